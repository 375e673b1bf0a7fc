"""Health details in French call transcripts: a lexicon of symptoms, conditions, body
complaints, examinations and common medicines, with the words that tie them to a person
("j'ai", "mon", "son", "il a"...).

Only used when the practice asks for health details to be redacted
(``RedactionContext.health``): a symptom said in a call is tied to the caller or to the
person they call for. Matching is done on an accent-free, lower-case copy of the text of
the same length, so offsets are the original text's.
"""

from __future__ import annotations

import re
import unicodedata

from transcripts.redaction_rules import Found

__all__ = ["find_health", "fold_same_length"]


def fold_same_length(text: str) -> str:
    """Lower case, accents removed, one character for one character."""
    out = []
    for c in text:
        d = unicodedata.normalize("NFKD", c.lower())
        base = "".join(x for x in d if not unicodedata.combining(x))
        out.append(base[0] if len(base) >= 1 else c)
    return "".join(out).replace("\u2019", "'")


# Conditions, symptoms, examinations (accent-free, lower case, regex fragments).
_TERMS = [
    r"(?:mal|maux) (?:a|au|aux|de|du|des|a la|a l')\s?(?:tete|gorge|ventre|dos|dent|dents|oreille|"
    r"oreilles|yeux|oeil|genou|genoux|dos|epaule|hanche|cheville|pied|pieds|jambe|jambes|bras|"
    r"coeur|estomac|poitrine|nuque|cou|poignet|coude|main|mains|reins|tete|chien)\w*",
    r"douleurs? (?:\w+ ){0,3}?(?:poitrine|ventre|dos|thorax|tete|bras|jambe|jambes|genou|epaule)",
    r"douleurs?", r"fievre", r"temperature", r"trente-(?:huit|neuf|sept)(?: (?:cinq|deux|huit))?",
    r"tousse\w*", r"toux", r"angine", r"grippe", r"rhume", r"enrhume\w*", r"bronchite",
    r"bronchiolite", r"otite", r"sinusite", r"gastro(?:-enterite)?", r"diarrhee\w*", r"vomi\w*",
    r"nausee\w*", r"vertiges?", r"migraines?", r"infection(?: urinaire)?", r"cystite",
    r"ca (?:me |lui |te )?brule\w*", r"ca (?:me |lui |te )?gratte\w*", r"ca (?:me |lui )?pique",
    r"demangeaisons?", r"eczema", r"psoriasis", r"acne", r"couperose", r"allergi\w+",
    r"asthme", r"asthmatique", r"diabet\w+", r"glycemie", r"cholesterol", r"tension",
    r"hypertension", r"essouffl\w+", r"palpitations?", r"saign\w+", r"du sang", r"enceinte",
    r"grossesse", r"fausse couche", r"regles", r"contraception", r"depression", r"deprim\w+",
    r"anxiete", r"angoiss\w+", r"crises? d'angoisse", r"insomnie\w*", r"je dors (?:plus|mal|pas)",
    r"il dort mal", r"elle dort mal", r"fatigue\w*", r"(?:je )?perds? (?:un peu )?(?:mes|ses) cheveux",
    r"cancer", r"tumeur", r"chimio\w*", r"avc", r"infarctus", r"thyroide", r"ferritine",
    r"prise de sang", r"bilan sanguin", r"radio (?:des|du|de la) \w+", r"echographie",
    r"irm", r"scanner", r"biopsie", r"grain de beaute", r"grains de beaute", r"verrues?",
    r"plaques? rouges?", r"cloques?", r"lesions?", r"cicatrices?", r"taches? (?:sur|brunes?)",
    r"entorse", r"fracture", r"arthrose", r"rhumatisme", r"tendinite", r"sciatique", r"lumbago",
    r"kyste", r"mycose", r"herpes", r"hepatite", r"vih", r"hospitalise\w*", r"cardiologie",
    r"operee?", r"malaise", r"evanoui\w*", r"perte de connaissance", r"convulsion\w*",
    r"paralys\w+", r"engourdi\w*", r"gonfle\w*", r"enfle\w*", r"nez (?:qui coule|bouche)",
    r"(?:du )?mal a respirer", r"respire mal", r"ca siffle", r"souffle", r"arret de travail",
    r"idees noires", r"suicid\w+", r"envie de mourir", r"handicap\w*", r"alzheimer",
    r"parkinson", r"epilep\w+", r"constip\w+", r"brulures?", r"piqure", r"morsure",
    r"coupe\w* (?:a|au) \w+", r"cherche ses mots", r"parle drole", r"(?:le )?sucre",
    r"kine", r"kinesitherapie", r"pilule",
]

# Medicines commonly named by patients (international names and French brands).
_MEDICINES = [
    "doliprane", "dafalgan", "efferalgan", "paracetamol", "ibuprofene", "advil", "nurofen",
    "aspirine", "kardegic", "levothyrox", "metformine", "amlodipine", "ventoline", "seretide",
    "augmentin", "amoxicilline", "smecta", "gaviscon", "spasfon", "insuline", "eliquis",
    "xarelto", "previscan", "tahor", "crestor", "aerius", "xyzall", "zyrtec", "efudix",
    "daivobet", "dermoval", "diprosone", "lexomil", "xanax", "stilnox", "imovane",
    "deroxat", "seroplex", "prozac", "lyrica", "tramadol", "codeine", "morphine", "cortisone",
    "prednisolone", "solupred", "inexium", "mopral", "omeprazole", "lansoprazole",
    "bisoprolol", "ramipril", "coversyl", "lasilix", "furosemide", "atorvastatine",
    "simvastatine", "antibiotiques?", "anti-inflammatoires?", "antidepresseurs?",
    "anxiolytiques?", "somniferes?", "cachets? pour (?:la|le|les|mon|ma|son|sa) \\w+",
    "medicaments? pour (?:la|le|les|mon|ma|son|sa) \\w+", "microgrammes?", "milligrammes?",
]

_PATTERN = re.compile(
    r"(?<![\w-])(?:" + "|".join(f"(?:{t})" for t in _TERMS + _MEDICINES) + r")(?![\w-])")
# words that tie a complaint to a person, taken into the span when right before it
_LEAD = re.compile(
    r"(?:(?:j'ai|il a|elle a|vous avez|tu as|on a|j'avais|il avait|elle avait|je fais|"
    r"je prends|il prend|elle prend|vous prenez|je suis|il est|elle est|"
    r"mon|ma|mes|son|sa|ses|votre|vos|ton|ta|tes|un|une|des|du|de la|de l'|le|la|les|l')\s?)$")


def find_health(text: str) -> list[Found]:
    """Health details: symptoms, conditions, examinations and medicines."""
    folded = fold_same_length(text)
    out: list[Found] = []
    for m in _PATTERN.finditer(folded):
        start = m.start()
        lead = _LEAD.search(folded[max(0, start - 16):start])
        if lead:
            start -= len(lead.group())
        out.append(Found(start, m.end(), "health", "rule", m.group()))
    # merge spans that touch or are separated by one short connector ("fièvre et toux")
    merged: list[Found] = []
    for f in sorted(out, key=lambda f: f.start):
        if merged and (f.start <= merged[-1].end or re.fullmatch(
                r"[ ,]*(?:et|ou|avec)?[ ,]*", folded[merged[-1].end:f.start])):
            last = merged[-1]
            merged[-1] = Found(last.start, max(last.end, f.end), "health", "rule", last.value)
        else:
            merged.append(f)
    return merged
