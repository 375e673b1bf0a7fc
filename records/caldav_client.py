"""A small async CalDAV client (httpx): put, get, delete and list events in a time range.

Enough for Nextcloud, Radicale, Baïkal, SOGo, Google CalDAV... Events are parsed with
``icalendar`` (installed with the ``caldav`` extra). Recurring events are expanded by the
server (``<C:expand>``), so each occurrence comes back as its own :class:`RemoteEvent`.
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Protocol
from urllib.parse import quote, urljoin
from zoneinfo import ZoneInfo

import httpx

__all__ = ["APPOINTMENT_PROPERTY", "CalDavCalendar", "CalDavError", "CalDavUnavailable",
           "CalendarClient", "RemoteEvent", "build_event_ics", "parse_events"]

logger = logging.getLogger(__name__)

APPOINTMENT_PROPERTY = "X-TWIN-APPOINTMENT-ID"
_NS = {"D": "DAV:", "C": "urn:ietf:params:xml:ns:caldav"}


class CalDavError(RuntimeError):
    """The CalDAV server refused a request (``str()`` says which and why)."""


class CalDavUnavailable(CalDavError):
    """The CalDAV server cannot be reached (down, timeout, DNS...)."""


@dataclass(frozen=True)
class RemoteEvent:
    key: str  # UID, plus "#<recurrence-id>" for one occurrence of a recurring event
    uid: str
    start: datetime
    end: datetime
    summary: str = ""
    appointment_id: int | None = None  # set on events this project created
    etag: str | None = None


class CalendarClient(Protocol):
    """One calendar (e.g. one practitioner's) on a CalDAV server."""

    async def put_event(self, uid: str, ics: str) -> str | None: ...

    async def get_event(self, uid: str) -> RemoteEvent | None: ...

    async def delete_event(self, uid: str) -> None: ...

    async def events_between(self, start: datetime, end: datetime) -> list[RemoteEvent]: ...


def _icalendar() -> Any:
    try:
        import icalendar
    except ModuleNotFoundError as exc:  # pragma: no cover - depends on the install
        raise ModuleNotFoundError(
            "CalDAV sync needs 'icalendar': pip install -e '.[caldav]'", name="icalendar") from exc
    return icalendar


def build_event_ics(*, uid: str, start: datetime, end: datetime, summary: str,
                    appointment_id: int | None = None, description: str = "") -> str:
    ical = _icalendar()
    cal = ical.Calendar()
    cal.add("prodid", "-//secretary-twin//records//EN")
    cal.add("version", "2.0")
    ev = ical.Event()
    ev.add("uid", uid)
    ev.add("dtstamp", datetime.now(UTC))
    ev.add("dtstart", start.astimezone(UTC))
    ev.add("dtend", end.astimezone(UTC))
    ev.add("summary", summary)
    if description:
        ev.add("description", description)
    if appointment_id is not None:
        ev.add(APPOINTMENT_PROPERTY, str(appointment_id))
    cal.add_component(ev)
    return str(cal.to_ical().decode("utf-8"))


def _aware(value: date | datetime, tz: ZoneInfo) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=tz)
    return datetime.combine(value, time(0), tzinfo=tz)  # all-day


def parse_events(ics: str, *, tz: ZoneInfo, etag: str | None = None) -> list[RemoteEvent]:
    """The VEVENTs of one calendar object (floating and all-day times in ``tz``)."""
    ical = _icalendar()
    out = []
    for comp in ical.Calendar.from_ical(ics).walk("VEVENT"):
        uid = str(comp.get("uid", ""))
        if not uid or comp.get("dtstart") is None:
            continue
        start = _aware(comp.decoded("dtstart"), tz)
        if comp.get("dtend") is not None:
            end = _aware(comp.decoded("dtend"), tz)
        elif comp.get("duration") is not None:
            end = start + comp.decoded("duration")
        else:
            end = start + (timedelta(days=1) if not isinstance(comp.decoded("dtstart"), datetime)
                           else timedelta(0))
        rid = comp.get("recurrence-id")
        key = f"{uid}#{_aware(comp.decoded('recurrence-id'), tz).astimezone(UTC):%Y%m%dT%H%M%SZ}" \
            if rid is not None else uid
        raw_id = comp.get(APPOINTMENT_PROPERTY)
        appt = int(str(raw_id)) if raw_id is not None and str(raw_id).isdigit() else None
        out.append(RemoteEvent(key=key, uid=uid, start=start, end=end,
                               summary=str(comp.get("summary", "")), appointment_id=appt,
                               etag=etag))
    return out


def _utc(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


class CalDavCalendar:
    """A CalDAV calendar collection at ``url`` (ends with ``/``)."""

    def __init__(self, *, url: str, username: str | None = None, password: str | None = None,
                 tz: str = "Europe/Paris", timeout_s: float = 10.0) -> None:
        self.url = url if url.endswith("/") else url + "/"
        self.username = username
        self.password = password
        self.tz = ZoneInfo(tz)
        self.timeout_s = timeout_s
        self._client: httpx.AsyncClient | None = None

    async def start(self) -> None:
        auth = (self.username, self.password or "") if self.username else None
        self._client = httpx.AsyncClient(auth=auth, timeout=self.timeout_s)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
        self._client = None

    async def _request(self, method: str, url: str, *, ok: tuple[int, ...],
                       **kwargs: Any) -> httpx.Response:
        if self._client is None:
            await self.start()
        assert self._client is not None
        try:
            response = await self._client.request(method, url, **kwargs)
        except (httpx.TransportError, OSError) as exc:
            raise CalDavUnavailable(f"CalDAV server {self.url} unreachable: {exc!r}") from exc
        if response.status_code >= 500 and response.status_code not in ok:
            raise CalDavUnavailable(f"{method} {url}: server error {response.status_code}")
        if response.status_code not in ok:
            raise CalDavError(f"{method} {url}: HTTP {response.status_code} "
                              f"{response.text[:200]!r}")
        return response

    def _href(self, uid: str) -> str:
        return urljoin(self.url, quote(uid.replace("@", "_").replace("/", "_"), safe="") + ".ics")

    async def ensure_exists(self, *, display_name: str = "") -> None:
        """Create the calendar (MKCALENDAR) if it does not exist yet."""
        probe = await self._request("PROPFIND", self.url, ok=(207, 404),
                                    headers={"Depth": "0"})
        if probe.status_code == 404:
            body = ("<?xml version='1.0' encoding='utf-8'?><C:mkcalendar xmlns:D='DAV:' "
                    "xmlns:C='urn:ietf:params:xml:ns:caldav'><D:set><D:prop><D:displayname>"
                    f"{display_name}</D:displayname></D:prop></D:set></C:mkcalendar>")
            await self._request("MKCALENDAR", self.url, ok=(201,), content=body.encode())

    async def put_event(self, uid: str, ics: str) -> str | None:
        r = await self._request("PUT", self._href(uid), ok=(200, 201, 204), content=ics.encode(),
                                headers={"Content-Type": "text/calendar; charset=utf-8"})
        return r.headers.get("ETag")

    async def get_event(self, uid: str) -> RemoteEvent | None:
        r = await self._request("GET", self._href(uid), ok=(200, 404))
        if r.status_code == 404:
            return None
        events = parse_events(r.text, tz=self.tz, etag=r.headers.get("ETag"))
        return events[0] if events else None

    async def delete_event(self, uid: str) -> None:
        await self._request("DELETE", self._href(uid), ok=(200, 204, 404))

    async def events_between(self, start: datetime, end: datetime) -> list[RemoteEvent]:
        body = f"""<?xml version="1.0" encoding="utf-8"?>
<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">
  <D:prop><D:getetag/><C:calendar-data><C:expand start="{_utc(start)}" end="{_utc(end)}"/>
  </C:calendar-data></D:prop>
  <C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">
    <C:time-range start="{_utc(start)}" end="{_utc(end)}"/>
  </C:comp-filter></C:comp-filter></C:filter>
</C:calendar-query>"""
        r = await self._request("REPORT", self.url, ok=(207,), content=body.encode(),
                                headers={"Depth": "1",
                                         "Content-Type": "application/xml; charset=utf-8"})
        return parse_multistatus(r.text, tz=self.tz)


def parse_multistatus(xml_text: str, *, tz: ZoneInfo) -> list[RemoteEvent]:
    """Events from a REPORT calendar-query answer (a WebDAV multistatus document)."""
    out: list[RemoteEvent] = []
    root = ET.fromstring(xml_text)
    for resp in root.findall("D:response", _NS):
        data = resp.find(".//C:calendar-data", _NS)
        if data is None or not (data.text or "").strip():
            continue
        etag_el = resp.find(".//D:getetag", _NS)
        etag = etag_el.text if etag_el is not None else None
        out.extend(parse_events(data.text or "", tz=tz, etag=etag))
    return out
