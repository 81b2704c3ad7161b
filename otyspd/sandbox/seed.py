"""Deterministic seed data: a made-up Dutch recruitment tenant with realistic mess.

The same ``seed`` and ``records`` always give the same data. All names are
assembled from the word lists below; e-mail domains are example.* domains.
The mess a cleanup is for is deliberate: inconsistent case and spacing,
several phone and postcode formats, infixes and accents, empty fields, the
same person entered twice, merged candidates (with chains A -> B -> C) and
vacancies in several content languages.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import unicodedata
from typing import Any

from .schema import SUPPORTED_LANGUAGES
from .store import Store, quote
from .values import AMSTERDAM

FIRST_NAMES = (
    "Jan",
    "Pieter",
    "Kees",
    "Sanne",
    "Anouk",
    "Fleur",
    "Daan",
    "Bram",
    "Lotte",
    "Emma",
    "Sem",
    "Noor",
    "Lucas",
    "Julia",
    "Thijs",
    "Femke",
    "Ruben",
    "Iris",
    "Mohammed",
    "Fatima",
    "Yusuf",
    "Ayşe",
    "Zoë",
    "Chloé",
    "José",
    "Björn",
    "Renée",
    "Marloes",
    "Joost",
    "Wouter",
    "Inge",
    "Hanneke",
    "Sven",
    "Eva",
    "Milan",
    "Sophie",
    "Tim",
    "Lieke",
    "Gert-Jan",
    "Anna-Lena",
)
LAST_NAMES = (
    ("", "Jansen"),
    ("de", "Vries"),
    ("van den", "Berg"),
    ("", "Bakker"),
    ("", "Visser"),
    ("", "Smit"),
    ("", "Meijer"),
    ("de", "Boer"),
    ("", "Mulder"),
    ("de", "Groot"),
    ("", "Bos"),
    ("", "Vos"),
    ("", "Peters"),
    ("", "Hendriks"),
    ("van", "Leeuwen"),
    ("", "Dekker"),
    ("", "Brouwer"),
    ("de", "Wit"),
    ("", "Dijkstra"),
    ("de", "Graaf"),
    ("van der", "Meer"),
    ("van der", "Linden"),
    ("", "Kok"),
    ("de", "Haan"),
    ("", "Vermeulen"),
    ("van den", "Heuvel"),
    ("van der", "Veen"),
    ("van", "Dijk"),
    ("", "Özil"),
    ("", "Müller"),
    ("", "Sánchez"),
    ("", "Ería"),
    ("", "Yılmaz"),
    ("", "Kowalski"),
    ("", "Nguyen"),
    ("el", "Amrani"),
    ("", "Dubois"),
    ("", "Schröder"),
    ("ter", "Horst"),
    ("in 't", "Veld"),
)
CITIES = (
    ("Amsterdam", "NL"),
    ("Rotterdam", "NL"),
    ("Utrecht", "NL"),
    ("Den Haag", "NL"),
    ("'s-Gravenhage", "NL"),
    ("'s-Hertogenbosch", "NL"),
    ("Eindhoven", "NL"),
    ("Groningen", "NL"),
    ("Zwolle", "NL"),
    ("Leeuwarden", "NL"),
    ("Maastricht", "NL"),
    ("Arnhem", "NL"),
    ("Dresden", "DE"),
    ("Leipzig", "DE"),
    ("Antwerpen", "BE"),
    ("Lyon", "FR"),
)
STREETS = (
    "Kerkstraat",
    "Dorpsstraat",
    "Stationsweg",
    "Molenweg",
    "Schoolstraat",
    "Julianalaan",
    "Beatrixstraat",
    "Lindelaan",
    "Havenkade",
    "Marktplein",
)
COMPANY_WORDS = (
    "Techniek",
    "Logistiek",
    "Zorggroep",
    "Bouw",
    "Software",
    "Advies",
    "Transport",
    "Installatie",
    "Facilitair",
    "Finance",
    "Metaal",
    "Food",
)
COMPANY_FORMS = ("B.V.", "BV", "b.v.", "Holding B.V.", "N.V.", "& Zn.", "Groep", "")
DOMAINS = (
    "example.com",
    "example.nl",
    "example.org",
    "mail.example.nl",
    "post.example.com",
)
VACANCY_TITLES = (
    (
        "Medewerker klantenservice",
        "Customer service employee",
        "Kundenservice-Mitarbeiter",
        "Conseiller clientèle",
    ),
    ("Magazijnmedewerker", "Warehouse worker", "Lagermitarbeiter", "Magasinier"),
    ("Verpleegkundige", "Nurse", "Pflegekraft", "Infirmier"),
    (
        "Software developer",
        "Software developer",
        "Softwareentwickler",
        "Développeur logiciel",
    ),
    (
        "Financieel administratief medewerker",
        "Accounts assistant",
        "Buchhalter",
        "Assistant comptable",
    ),
    ("Chauffeur C/E", "Truck driver", "LKW-Fahrer", "Chauffeur poids lourd"),
    ("Monteur elektrotechniek", "Electrical engineer", "Elektriker", "Électricien"),
    (
        "Docent wiskunde",
        "Mathematics teacher",
        "Mathematiklehrer",
        "Professeur de mathématiques",
    ),
    ("Kok", "Cook", "Koch", "Cuisinier"),
    (
        "Projectleider bouw",
        "Construction project manager",
        "Bauleiter",
        "Chef de projet BTP",
    ),
)
_LANGS4 = ("nl", "en", "de", "fr")
_BASE = int(dt.datetime(2015, 1, 1, tzinfo=AMSTERDAM).timestamp())
_END = int(dt.datetime(2025, 6, 30, 18, 0, tzinfo=AMSTERDAM).timestamp())


class _FastRandom(random.Random):
    """random.Random with a quicker choice and randrange (the seed draws millions)."""

    def choice(self, seq: Any) -> Any:
        return seq[int(self.random() * len(seq))]

    def randrange(self, start: int, stop: int | None = None, step: int = 1) -> int:
        if stop is None:
            start, stop = 0, start
        return start + int(self.random() * (stop - start))


def seed_store(store: Store, *, records: int, seed: int) -> None:
    """Fill an empty store with a tenant of ``records`` candidates."""
    rng = _FastRandom(seed)
    store.uid_rng.seed(f"uids-{seed}")
    uids: set[str] = set()

    def uid() -> str:
        while True:
            value = f"{rng.getrandbits(64):016x}"
            if value not in uids:
                uids.add(value)
                return value

    n_users = min(60, 12 + records // 2000)
    users = _users(rng, n_users)
    relations = _relations(rng, max(15, records // 25), n_users, uid)
    contacts = _contacts(rng, relations, n_users, uid)
    vacancies = _vacancies(rng, max(20, records // 20), n_users, relations, uid)
    candidates, merges = _candidates(rng, records, n_users, uid)
    procedures = _procedures(
        rng, max(10, records // 4), candidates, vacancies, n_users, uid
    )
    with store.lock:
        conn = store.conn
        conn.execute("BEGIN")
        for service, rows in (
            ("UserService", users),
            ("RelationService", relations),
            ("RelationContactService", contacts),
            ("VacancyService", vacancies),
            ("CandidateService", candidates),
            ("ProcedureService", procedures),
            ("DocumentTypeService", _document_types()),
        ):
            _insert(conn, service, rows)
        conn.executemany(
            "INSERT INTO merges (merged, src_id, src_uid, src_nr, dst_id, dst_uid, dst_nr) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            merges,
        )
        _documents(rng, conn, candidates, vacancies, relations, uid)
        conn.execute("COMMIT")
        for table in store.tables.values():
            table.create_indexes(conn)
        conn.execute("ANALYZE")
    store.set_meta("seed", json.dumps({"seed": seed, "records": records}))


def _insert(conn: Any, service: str, rows: list[dict]) -> None:
    if not rows:
        return
    cols = list(rows[0])
    sql = (
        f"INSERT INTO {quote(service)} ({', '.join(quote(c) for c in cols)}) "
        f"VALUES ({', '.join('?' * len(cols))})"
    )
    conn.executemany(sql, [tuple(r.get(c) for c in cols) for r in rows])


# ---- people -------------------------------------------------------------------


def _messy_first(rng: random.Random, name: str) -> str:
    roll = rng.random()
    if roll < 0.08:
        return f"  {name.lower()} "
    if roll < 0.12:
        return name.upper()
    if roll < 0.15:
        return name + " "
    return name


def _messy_last(rng: random.Random, infix: str, last: str) -> tuple[str | None, str]:
    roll = rng.random()
    if infix and roll < 0.06:
        return None, f"{infix} {last}".upper()  # infix folded into the last name
    if infix and roll < 0.12:
        return infix.title(), last  # "Van der" instead of "van der"
    if roll < 0.16:
        return infix or None, last.upper()
    if roll < 0.19:
        return infix or None, f" {last}  "
    return infix or None, last


def _email(rng: random.Random, first: str, infix: str | None, last: str) -> str | None:
    roll = rng.random()
    if roll < 0.08:
        return None
    local = ".".join(
        p for p in (first.strip(), (infix or "").strip(), last.strip()) if p
    )
    local = local.replace(" ", ".").lower()
    local = (
        unicodedata.normalize("NFKD", local).encode("ascii", "ignore").decode()
        or "kandidaat"
    )
    address = f"{local}@{rng.choice(DOMAINS)}"
    if roll < 0.16:
        return address.title().replace("@Example", "@Example") + " "
    if roll < 0.2:
        return address.upper()
    return address


def _phone(rng: random.Random) -> str | None:
    digits = f"{rng.randrange(10**8):08d}"
    style = rng.random()
    if style < 0.1:
        return None
    if style < 0.3:
        return f"06{digits}"
    if style < 0.45:
        return f"06-{digits}"
    if style < 0.6:
        return f"+31 6 {digits[:4]} {digits[4:]}"
    if style < 0.7:
        return f"+316{digits}"
    if style < 0.8:
        return f"06 {digits[:2]} {digits[2:4]} {digits[4:6]} {digits[6:]}"
    if style < 0.9:
        return f"(020) {digits[:3]} {digits[3:7]}"
    return f"0031-6-{digits}"


def _postcode(rng: random.Random, country: str) -> str | None:
    if rng.random() < 0.05:
        return None
    if country == "DE":
        return f"0{rng.randrange(1000, 9999)}"
    if country == "FR":
        return f"0{rng.randrange(1000, 9999)}"
    if country == "BE":
        return f"{rng.randrange(1000, 9999)}"
    num = rng.randrange(1000, 9999)
    letters = "".join(rng.choice("ABCDEGHJKLMNPRSTVWXZ") for _ in range(2))
    return rng.choice(
        (
            f"{num} {letters}",
            f"{num}{letters}",
            f"{num} {letters.lower()}",
            f" {num}  {letters}",
            f"{num}{letters.lower()}",
        )
    )


def _date(rng: random.Random, start: dt.date, days: int) -> str:
    return (start + dt.timedelta(days=rng.randrange(days))).isoformat()


def _users(rng: random.Random, n: int) -> list[dict]:
    rows = []
    for i in range(1, n + 1):
        first = FIRST_NAMES[(i * 7) % len(FIRST_NAMES)]
        infix, last = LAST_NAMES[(i * 11) % len(LAST_NAMES)]
        rows.append(
            {
                "_id": i,
                "username": "sandbox"
                if i == 1
                else f"{first.lower()}.{last.lower()}".encode(
                    "ascii", "ignore"
                ).decode(),
                "blocked": 1 if i > 3 and rng.random() < 0.1 else 0,
                "functionId": 4 if i == 1 else rng.choice((1, 1, 1, 2, 3)),
                "entryDateTime": _BASE + i * 86400 * 20,
                "Person.firstName": "API" if i == 1 else first,
                "Person.infix": None if i == 1 else (infix or None),
                "Person.lastName": "Koppeling" if i == 1 else last,
                "Person.initials": first[0] + ".",
                "Person.emailPrimary": f"user{i}@sandbox.example.nl",
                "Person.gender": rng.choice(("m", "f", "u")),
                "Person.phoneMobile": _phone(rng),
                "Person.languageCode": "nl",
            }
        )
    return rows


def _relations(rng: random.Random, n: int, n_users: int, uid: Any) -> list[dict]:
    rows = []
    for i in range(1, n + 1):
        city, country = rng.choice(CITIES)
        name = f"{rng.choice(LAST_NAMES)[1]} {rng.choice(COMPANY_WORDS)} {rng.choice(COMPANY_FORMS)}"
        if rng.random() < 0.1:
            name = name.upper()
        created = rng.randrange(_BASE, _END)
        rows.append(
            {
                "_id": i,
                "uid": uid(),
                "relation": name.strip() + (" " if rng.random() < 0.05 else ""),
                "customerNr": f"{rng.randrange(10**4):04d}.{rng.randrange(100):02d}.{rng.randrange(10**4):04d}",
                "statusId": rng.choice((1, 2, 2, 2, 3)),
                "userId": rng.randrange(1, n_users + 1),
                "address": f"{rng.choice(STREETS)} {rng.randrange(1, 200)}",
                "postcode": _postcode(rng, country),
                "city": city if rng.random() > 0.1 else city.upper(),
                "countryCode": country,
                "phoneNumber": _phone(rng),
                "email": f"info{i}@{rng.choice(DOMAINS)}",
                "website": f"https://www.bedrijf{i}.example.nl"
                if rng.random() < 0.7
                else None,
                "cocNumber": f"{rng.randrange(10**8):08d}"
                if rng.random() < 0.8
                else None,
                "entryDateTime": created,
                "lastModified": rng.randrange(created, _END + 1),
            }
        )
    return rows


def _contacts(
    rng: random.Random, relations: list[dict], n_users: int, uid: Any
) -> list[dict]:
    rows = []
    for rel in relations:
        for k in range(rng.choice((1, 2, 2, 3))):
            first = rng.choice(FIRST_NAMES)
            infix, last = _messy_last(rng, *rng.choice(LAST_NAMES))
            created = rng.randrange(rel["entryDateTime"], _END + 1)
            rows.append(
                {
                    "_id": len(rows) + 1,
                    "uid": uid(),
                    "relationId": rel["uid"],
                    "function": rng.choice(
                        ("HR-manager", "Directeur", "Recruiter", "Teamleider", None)
                    ),
                    "userId": rel["userId"],
                    "isPrimaryContact": int(k == 0),
                    "entryDateTime": created,
                    "lastModified": created,
                    "Person.firstName": _messy_first(rng, first),
                    "Person.infix": infix,
                    "Person.lastName": last,
                    "Person.initials": first[0] + ".",
                    "Person.emailPrimary": _email(rng, first, infix, last),
                    "Person.gender": rng.choice(("m", "f", "u")),
                    "Person.phoneMobile": _phone(rng),
                    "Person.languageCode": rng.choice(("nl", "nl", "nl", "en", "de")),
                }
            )
    return rows


def _candidates(
    rng: random.Random, records: int, n_users: int, uid: Any
) -> tuple[list, list]:
    """Candidates, plus merge rows for the ones merged away (absent from the table)."""
    n_ghosts = max(3, records // 100)
    total = records + n_ghosts
    ghosts = set(rng.sample(range(1, total + 1), n_ghosts))
    people: dict[int, dict] = {}
    rows = []
    span = (_END - _BASE) // total
    pools = _Pools(rng)
    for i in range(1, total + 1):
        row = _candidate(
            rng, i, n_users, uid, _BASE + i * span + rng.randrange(span), pools
        )
        # The same person entered twice: copy an earlier candidate with small differences.
        if len(rows) > 10 and rng.random() < 0.03:
            twin = rng.choice(rows)
            for key in (
                "Person.firstName",
                "Person.infix",
                "Person.lastName",
                "Person.birthdate",
                "Person.AddressPrimary.city",
                "Person.AddressPrimary.postcode",
            ):
                row[key] = twin[key]
            email = twin["Person.emailPrimary"]
            row["Person.emailPrimary"] = (
                email.upper() if email and rng.random() < 0.5 else email
            )
        people[i] = row
        if i not in ghosts:
            rows.append(row)
    merges = _merges(rng, people, ghosts)
    return rows, merges


class _Pools:
    """Pre-drawn values that candidates pick from, so that 100,000 seed in seconds."""

    def __init__(self, rng: random.Random) -> None:
        def draw(n: int, make: Any) -> list:
            return [make() for _ in range(n)]

        def person() -> tuple:
            first = rng.choice(FIRST_NAMES)
            infix, last = _messy_last(rng, *rng.choice(LAST_NAMES))
            shown = _messy_first(rng, first) if rng.random() > 0.02 else None
            initials = f"{first[0]}." if rng.random() < 0.8 else None
            return shown, infix, last, initials, _email(rng, first, infix, last)

        def history() -> str:
            job = {
                "employer": f"{rng.choice(LAST_NAMES)[1]} {rng.choice(COMPANY_WORDS)}",
                "function": rng.choice(VACANCY_TITLES)[0],
                "startDate": _date(rng, dt.date(2005, 1, 1), 5000),
                "endDate": None,
            }
            return json.dumps([job])

        self.people = draw(5000, person)
        self.phones = draw(5000, lambda: _phone(rng))
        self.postcodes = {
            c: draw(800, lambda c=c: _postcode(rng, c))
            for c in ("NL", "DE", "BE", "FR")
        }
        self.birthdates = [
            (dt.date(1960, 1, 1) + dt.timedelta(days=d)).isoformat()
            for d in range(16000)
        ]
        self.available = [
            (dt.date(2024, 1, 1) + dt.timedelta(days=d)).isoformat() for d in range(730)
        ]
        self.branches = [
            json.dumps(sorted(rng.sample(range(101, 107), k)))
            for k in (0, 0, 1, 1, 1, 2, 2, 3)
        ]
        self.education = [json.dumps([k]) for k in range(201, 205)]
        self.histories = draw(400, history)
        self.addresses = [
            f"{rng.choice(STREETS)} {rng.randrange(1, 300)}" for _ in range(2000)
        ]


def _candidate(
    rng: random.Random,
    i: int,
    n_users: int,
    uid: Any,
    created: int,
    pools: _Pools | None = None,
) -> dict:
    pools = pools or _Pools(rng)
    pick, r = rng.choice, rng.random
    first, infix, last, initials, email = pick(pools.people)
    city, country = pick(CITIES)
    phones = []
    mobile, other = pick(pools.phones), pick(pools.phones)
    if mobile and r() < 0.9:
        phones.append(f'{{"type": "mobile", "phoneNumber": "{mobile}"}}')
    if other and r() < 0.3:
        phones.append(f'{{"type": "primary", "phoneNumber": "{other}"}}')
    accepted = r() < 0.7
    return {
        "_id": i,
        "uid": uid(),
        "personalNr": str(100000 + int(r() * 900000)) if r() < 0.6 else None,
        "statusId": pick((1, 1, 2, 2, 2, 3, 4, 5, 6)),
        "userId": 1 + int(r() * n_users),
        "entryDateTime": created,
        "lastModified": created + int(r() * max(1, _END - created)),
        "availableAt": pick(pools.available) if r() < 0.6 else None,
        "acceptTerms": int(accepted),
        "acceptTermsTs": created + int(r() * 3600) if accepted else None,
        "ownsCar": int(r() < 0.6) if r() < 0.9 else None,
        "willRelocate": int(r() < 0.2),
        "handicapped": 0,
        "noticeTerm": pick(("1 maand", "2 maanden", "direct", "4 weken", None)),
        "source": pick(("website", "website", "indeed", "linkedin", "referral", None)),
        "website": None,
        "matchCriteria_1": pick(pools.branches),
        "matchCriteria_2": pick(pools.education) if r() < 0.7 else None,
        "mergeHistory": None,
        "remarks": pick(
            (
                None,
                None,
                "Belt terug na de vakantie.",
                "Heeft interesse in parttime werk.",
                "Via beurs binnengekomen.",
            )
        ),
        "EmploymentHistory": pick(pools.histories) if r() < 0.5 else None,
        "Person.firstName": first,
        "Person.infix": infix,
        "Person.lastName": last,
        "Person.initials": initials,
        "Person.emailPrimary": email,
        "Person.gender": pick(("m", "f", "m", "f", "u")),
        "Person.phoneMobile": mobile if phones else None,
        "Person.languageCode": pick(("nl",) * 16 + ("en", "en", "de", "fr")),
        "Person.birthdate": pick(pools.birthdates) if r() > 0.15 else None,
        "Person.nationalityCode": pick(("NL",) * 8 + ("BE", "DE", "TR", "PL", None)),
        "Person.AddressPrimary.address": pick(pools.addresses) if r() < 0.85 else None,
        "Person.AddressPrimary.postcode": pick(pools.postcodes[country]),
        "Person.AddressPrimary.city": pick(
            (city, city, city, city.upper(), city.lower(), f" {city}")
        ),
        "Person.AddressPrimary.countryCode": country,
        "Person.PhoneNumbers": f"[{', '.join(phones)}]" if phones else None,
    }


def _merges(
    rng: random.Random, people: dict[int, dict], ghosts: set[int]
) -> list[tuple]:
    """Merge each ghost into a live candidate or into a later ghost (chains A -> B -> C)."""
    live = [i for i in people if i not in ghosts]
    target: dict[int, int] = {}
    for g in sorted(ghosts, reverse=True):
        later = [h for h in ghosts if h > g]
        target[g] = (
            rng.choice(later) if later and rng.random() < 0.4 else rng.choice(live)
        )
    ordered = sorted(ghosts)
    if len(ordered) >= 2:
        # Always at least one chain: the first ghost merged into the second.
        target[ordered[0]] = ordered[1]
        # uid/internalId wins over personalNr: give one ghost the other's internalId as personalNr.
        people[ordered[1]]["personalNr"] = str(ordered[0])
    merges = []
    for g in ordered:
        src, dst = people[g], people[target[g]]
        when = max(src["lastModified"], dst["entryDateTime"]) + rng.randrange(
            3600, 86400 * 30
        )
        merges.append(
            (
                when,
                g,
                src["uid"],
                src["personalNr"],
                target[g],
                dst["uid"],
                dst["personalNr"],
            )
        )
    # Each surviving candidate lists every merge that ended up in it.
    final = {}
    for g in ordered:
        end = target[g]
        while end in ghosts:
            end = target[end]
        final[g] = end
    for m in merges:
        history = people[final[m[1]]]
        current = json.loads(history["mergeHistory"]) if history["mergeHistory"] else {}
        current[str(m[1])] = merge_item(m)
        history["mergeHistory"] = json.dumps(current)
    return merges


def merge_item(m: tuple) -> dict:
    """A merges row as the manual's mergeHistory item."""
    from .values import format_epoch

    merged, src_id, src_uid, src_nr, dst_id, dst_uid, dst_nr = m
    return {
        "mergeDateTime": format_epoch(merged),
        "idSource": str(src_id),
        "oidSource": src_uid,
        "personalNrSource": src_nr,
        "idDestination": str(dst_id),
        "oidDestination": dst_uid,
        "personalNrDestination": dst_nr,
    }


# ---- vacancies and procedures -------------------------------------------------


def _vacancies(
    rng: random.Random, n: int, n_users: int, relations: list, uid: Any
) -> list[dict]:
    rows = []
    for i in range(1, n + 1):
        titles = rng.choice(VACANCY_TITLES)
        rel = rng.choice(relations)
        city, country = rng.choice(CITIES)
        created = rng.randrange(_BASE + (_END - _BASE) // 2, _END)
        published = rng.random() < 0.6
        low = rng.choice((2200, 2600, 3000, 3400, 4000))
        row = {
            "_id": i,
            "uid": uid(),
            "referenceNr": f"VAC-{1000 + i}",
            "statusId": rng.choice((1, 1, 2, 3, 4)),
            "categoryId": rng.randrange(10, 17),
            "userId": rng.randrange(1, n_users + 1),
            "relationId": rel["uid"],
            "relationContactId": None,
            "salaryMin": float(low) if rng.random() < 0.8 else None,
            "salaryMax": float(low + rng.choice((400, 800, 1200)))
            if rng.random() < 0.8
            else None,
            "hours": rng.choice((24, 32, 36, 38, 40)),
            "published": int(published),
            "publicationStartDate": dt.datetime.fromtimestamp(created, AMSTERDAM)
            .date()
            .isoformat()
            if published
            else None,
            "publicationEndDate": _date(rng, dt.date(2025, 7, 1), 180)
            if published and rng.random() < 0.5
            else None,
            "locationCity": city,
            "locationPostcode": _postcode(rng, country),
            "locationCountryCode": country,
            "slug": json.dumps(
                {"1": _slug(titles[0], i)}
                | ({"2": _slug(titles[1], i)} if rng.random() < 0.3 else {})
            ),
            "publishedWebsites": json.dumps([1] + ([2] if rng.random() < 0.3 else []))
            if published
            else None,
            "blockScanners": int(rng.random() < 0.1),
            "matchCriteria_1": json.dumps([rng.randrange(101, 107)]),
            "viewCount": rng.randrange(0, 3000),
            "applyCount": rng.randrange(0, 80),
            "entryDateTime": created,
            "lastModified": rng.randrange(created, _END + 1),
            "remarks": None,
        }
        present = ["nl"] + [
            lang
            for lang, p in (("en", 0.6), ("de", 0.2), ("fr", 0.1))
            if rng.random() < p
        ]
        for lang in SUPPORTED_LANGUAGES:
            k = _LANGS4.index(lang) if lang in present else None
            row[f"title#{lang}"] = titles[k] if k is not None else None
            for field, text in _texts(titles, k):
                row[f"textField_{field}.title#{lang}"] = text[0]
                row[f"textField_{field}.text#{lang}"] = text[1]
        rows.append(row)
    return rows


def _slug(title: str, i: int) -> str:
    clean = "".join(
        c if c.isalnum() else "-"
        for c in title.lower().encode("ascii", "ignore").decode()
    )
    return f"{clean.strip('-')}-{i}"


def _texts(titles: tuple, k: int | None) -> list:
    if k is None:
        return [
            (f, (None, None)) for f in ("description", "requirements", "companyProfile")
        ]
    heads = {
        "description": (
            "Functieomschrijving",
            "Job description",
            "Stellenbeschreibung",
            "Description du poste",
        ),
        "requirements": (
            "Functie-eisen",
            "Requirements",
            "Anforderungen",
            "Profil recherché",
        ),
        "companyProfile": ("Over ons", "About us", "Über uns", "À propos de nous"),
    }
    return [
        (
            f,
            (
                h[k],
                f"<p>{h[k]}: {titles[k]}.</p>"
                if f != "requirements" or k != 3
                else None,
            ),
        )
        for f, h in heads.items()
    ]


def _procedures(
    rng: random.Random,
    n: int,
    candidates: list,
    vacancies: list,
    n_users: int,
    uid: Any,
) -> list[dict]:
    rows = []
    for i in range(1, n + 1):
        cand, vac = rng.choice(candidates), rng.choice(vacancies)
        created = max(cand["entryDateTime"], vac["entryDateTime"]) + rng.randrange(
            86400 * 60
        )
        rows.append(
            {
                "_id": i,
                "uid": uid(),
                "candidateUid": cand["uid"],
                "vacancyUid": vac["uid"],
                "userId": vac["userId"],
                "entryDateTime": created,
                "lastModified": created + rng.randrange(86400 * 30),
                "ProcedureStatus1.uid": rng.choice((1, 1, 1, 2, 2, 3, 4, 5, 6, 6)),
            }
        )
    return rows


def _document_types() -> list[dict]:
    names = (
        ("1", "CV", (1, 1, 0, 0, 0, 0, 0, 0)),
        ("2", "Motivatiebrief", (1, 1, 0, 0, 0, 0, 0, 0)),
        ("3", "Diploma", (1, 1, 0, 0, 0, 0, 0, 0)),
        ("4", "Contract", (1, 1, 0, 1, 0, 0, 0, 1)),
        ("5", "Referentie", (1, 1, 0, 0, 1, 0, 0, 0)),
        ("6", "Offerte", (1, 0, 0, 1, 1, 0, 1, 1)),
        ("7", "Gespreksnotitie", (0, 1, 1, 1, 1, 1, 1, 1)),
        ("201", "Overig", (1, 1, 1, 1, 1, 1, 1, 1)),
    )
    flags = (
        "forDocuments",
        "forCandidates",
        "forVacancies",
        "forCustomers",
        "forCustomerContacts",
        "forTasks",
        "forSales",
        "forProjects",
    )
    return [
        {"_id": int(u), "uid": u, "name": n, **dict(zip(flags, f, strict=False))}
        for u, n, f in names
    ]


def _documents(
    rng: random.Random,
    conn: Any,
    candidates: list,
    vacancies: list,
    relations: list,
    uid: Any,
) -> None:
    """A few attached documents, with small made-up file contents."""
    count = max(5, len(candidates) // 200)
    for i in range(count):
        if i % 5 == 3:
            entity, owner, type_id = 1, rng.choice(vacancies), "201"
        elif i % 5 == 4:
            entity, owner, type_id = 3, rng.choice(relations), "6"
        else:
            entity, owner, type_id = (
                2,
                rng.choice(candidates),
                rng.choice(("1", "1", "2", "3")),
            )
        ouid = uid()
        name = f"document-{i + 1}.txt" if i % 2 else f"cv-{i + 1}.pdf"
        data = (f"Sandbox document {i + 1} for record {owner['uid']}.\n" * 3).encode()
        if name.endswith(".pdf"):
            data = b"%PDF-1.4\n% sandbox\n" + data + b"%%EOF\n"
        mime = "application/pdf" if name.endswith(".pdf") else "text/plain"
        created = owner["entryDateTime"] + 3600
        conn.execute(
            "INSERT INTO files (ouid, name, mime, size, data, created) VALUES (?, ?, ?, ?, ?, ?)",
            (ouid, name, mime, len(data), data, created),
        )
        conn.execute(
            "INSERT INTO dossier (entity_id, object_uid, file_ouid, type_id, subject, description, "
            "private, created, user_id) VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?)",
            (
                entity,
                owner["uid"],
                ouid,
                type_id,
                name.rsplit(".", 1)[0].replace("-", " ").title(),
                None,
                created,
                owner.get("userId") or 1,
            ),
        )


def churn(
    store: Store,
    service: str,
    rng: random.Random,
    *,
    add: int,
    change: int,
    delete: int,
) -> None:
    """Change a service's data as colleagues would between two page reads.

    ``add`` copies random records under new uids (created now), ``change``
    gives random records a new status and lastModified, ``delete`` removes
    random records. The choices come from ``rng``, so they repeat.
    """
    table = store.tables[service]
    name = quote(service)
    now = int(dt.datetime.now(AMSTERDAM).timestamp())
    cols = [c for c, _ in table.storage_columns()]
    with store.lock:
        ids = [r[0] for r in store.all(f"SELECT _id FROM {name} ORDER BY _id")]
        if not ids:
            return
        for _ in range(add):
            source = rng.choice(ids)
            row = dict(
                zip(
                    cols,
                    store.one(
                        f"SELECT {', '.join(quote(c) for c in cols)} FROM {name} WHERE _id = ?",
                        (source,),
                    ),
                    strict=False,
                )
            )
            if not table.uid_is_int:
                row["uid"] = store.new_uid()
            for stamp in ("entryDateTime", "lastModified"):
                if stamp in row:
                    row[stamp] = now
            row.pop("mergeHistory", None)
            _insert(store.conn, service, [row])
        for _id in rng.sample(ids, min(change, len(ids))):
            sets = ['"lastModified" = ?'] if "lastModified" in cols else []
            params: list = [now] if sets else []
            if "statusId" in cols:
                sets.append('"statusId" = ?')
                params.append(rng.choice([k for k in table.options["statusId"]]))
            if sets:
                store.conn.execute(
                    f"UPDATE {name} SET {', '.join(sets)} WHERE _id = ?", (*params, _id)
                )
        for _id in rng.sample(ids, min(delete, len(ids))):
            store.conn.execute(f"DELETE FROM {name} WHERE _id = ?", (_id,))
