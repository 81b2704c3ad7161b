"""The sandbox's services: their fields, option lists and wire habits.

Each service is declared as a list of :class:`otyspd.schema.FieldDef` rows,
named by dotted path (``Person.AddressPrimary.city``), the way the field
definition pages of OWS list them. The field names follow what public
clients of the real server send and read (the vendor's own website plugin
among them); the attributes
(listable, updatable, ...) are the sandbox's choice where the real value is
unknown, and the server enforces them.

Besides the attributes the manual lists, a field may have:

- an option list (:data:`OPTIONS`): ids the field accepts, with labels;
- a wire habit (:data:`WIRE`): booleans that PHP sends as ``0``/``1`` or
  ``"1"``/``"0"`` instead of ``true``/``false``;
- a zero date (:data:`ZERO_DATES`): an empty date sent as ``0000-00-00``
  (or ``0000-00-00 00:00:00``) rather than ``null``, as MySQL does.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..schema import FieldDef

__all__ = [
    "DEFAULT_LANGUAGE",
    "ENTITY_IDS",
    "OPTIONS",
    "SERVICES",
    "SUPPORTED_LANGUAGES",
    "TENANT_LANGUAGES",
    "WIRE",
    "ZERO_DATES",
    "ServiceSchema",
]

#: Content languages the manual lists as supported (section 2.6).
SUPPORTED_LANGUAGES = ("cs", "de", "en", "es", "fr", "nl", "us")
#: The languages this simulated tenant keeps content in (``check.contentLanguages``).
TENANT_LANGUAGES = ("nl", "en", "de", "fr")
DEFAULT_LANGUAGE = "nl"

#: Dossier entity ids (manual section 3.2.1) and the AttachedDocumentsService key of each.
ENTITY_IDS = {
    1: "vacancyUid",
    2: "candidateUid",
    3: "relationUid",
    4: "relationContactUid",
    28: "taskUid",
    48: "salesTrajectoryUid",
    158: "projectUid",
}


def _f(name: str, type: str = "string", **attrs) -> FieldDef:
    """A field with defaults fitting its type: containers and collections are not filterable."""
    if type in ("container", "collection"):
        attrs.setdefault("filterable", False)
        attrs.setdefault("sortable", False)
    if type == "collection":
        attrs.setdefault("deletable", True)
    if type == "text":
        attrs.setdefault("sortable", False)
    return FieldDef(name=name, type=type, **attrs)


def _ro(name: str, type: str = "string", **attrs) -> FieldDef:
    """A read-only field: neither insertable nor updatable."""
    return _f(name, type, updatable=False, insertable=False, **attrs)


_UID = _ro("uid", in_list_by_default=True, comment="The record's OUID (a string).")
_CREATED = _ro(
    "entryDateTime", "datetime", type_comment="YYYY-MM-DD HH:MM:SS, Europe/Amsterdam"
)
_MODIFIED = _ro(
    "lastModified",
    "datetime",
    type_comment="YYYY-MM-DD HH:MM:SS, Europe/Amsterdam",
    comment="Changes on every write.",
)
_ML = "Multilingual: follows the content language."
_DT = "YYYY-MM-DD HH:MM:SS, Europe/Amsterdam"
_D = "YYYY-MM-DD"


def _person(
    prefix: str = "Person", *, address: bool = True, phones: bool = True
) -> list:
    rows = [
        _f(prefix, "container", comment="The person's personal data."),
        _f(f"{prefix}.firstName", in_list_by_default=True),
        _f(f"{prefix}.infix", comment="Tussenvoegsel, e.g. 'van der'."),
        _f(
            f"{prefix}.lastName",
            obligatory=True,
            not_empty=True,
            in_list_by_default=True,
        ),
        _f(f"{prefix}.initials"),
        _f(f"{prefix}.emailPrimary"),
        _f(f"{prefix}.gender", has_options=True),
        _f(f"{prefix}.phoneMobile"),
        _f(
            f"{prefix}.languageCode",
            has_options=True,
            comment="Options come as 'cmsLanguages'.",
        ),
    ]
    if address:
        rows += [
            _f(f"{prefix}.birthdate", "date", type_comment=_D),
            _f(f"{prefix}.nationalityCode", has_options=True),
            _f(f"{prefix}.AddressPrimary", "container"),
            _f(f"{prefix}.AddressPrimary.address"),
            _f(f"{prefix}.AddressPrimary.postcode"),
            _f(f"{prefix}.AddressPrimary.city"),
            _f(f"{prefix}.AddressPrimary.countryCode", has_options=True),
        ]
    if phones:
        rows.append(
            _f(
                f"{prefix}.PhoneNumbers",
                "collection",
                type_comment="list of {type, phoneNumber}",
                comment="Write a list to replace, or a map with ADD / DELETE / numbered items.",
            )
        )
    return rows


CANDIDATE = [
    _UID,
    _ro(
        "internalId",
        "integer",
        in_list_by_default=True,
        comment="Numeric id (an integer).",
    ),
    _f("personalNr", comment="Free reference number kept by the client."),
    _f("statusId", "integer", has_options=True, in_list_by_default=True),
    _f("userId", "integer", has_options=True, comment="Owner; options are the users."),
    _CREATED,
    _MODIFIED,
    _f(
        "availableAt",
        "date",
        type_comment=_D,
        comment="An empty date comes as 0000-00-00.",
    ),
    _f("acceptTerms", "boolean"),
    _f(
        "acceptTermsTs",
        "datetime",
        type_comment=_DT,
        comment="An empty value comes as 0000-00-00 00:00:00.",
    ),
    _f("ownsCar", "boolean", type_comment='sent as "1" / "0"'),
    _f("willRelocate", "boolean", type_comment="sent as 1 / 0"),
    _f("handicapped", "boolean"),
    _f("noticeTerm"),
    _f("source"),
    _f("website"),
    _f(
        "matchCriteria_1",
        "collection",
        has_options=True,
        filterable=True,
        type_comment="map optionId -> label",
        comment="Branche. Filter with EQ on option ids (any of).",
    ),
    _f(
        "matchCriteria_2",
        "collection",
        has_options=True,
        filterable=True,
        type_comment="map optionId -> label",
        comment="Opleidingsniveau.",
    ),
    _ro(
        "mergeHistory",
        "collection",
        deletable=False,
        type_comment="map idSource -> merge",
        comment="Candidates merged into this one (see retrieveDuplicateInfo).",
    ),
    _ro(
        "age",
        "integer",
        filterable=False,
        sortable=False,
        comment="Computed from Person.birthdate.",
    ),
    _f("remarks", "text", listable=False, filterable=False),
    _f(
        "EmploymentHistory",
        "collection",
        listable=False,
        type_comment="list of {employer, function, startDate, endDate}",
    ),
    *_person(),
]

_TEXTFIELDS = ("description", "requirements", "companyProfile")

VACANCY = [
    _UID,
    _ro("internalId", "integer", in_list_by_default=True),
    _f(
        "title",
        obligatory=True,
        not_empty=True,
        multilingual=True,
        in_list_by_default=True,
        comment=_ML,
    ),
    _f("referenceNr"),
    _f(
        "statusId",
        "integer",
        has_options=True,
        in_list_by_default=True,
        comment="Labels follow the content language.",
    ),
    _f(
        "categoryId",
        "integer",
        has_options=True,
        comment="Labels follow the content language.",
    ),
    _f("userId", "integer", has_options=True),
    _f("relationId", comment="The relation's uid."),
    _f("relationContactId", comment="The relation contact's uid."),
    _f("salaryMin", "float"),
    _f("salaryMax", "float"),
    _f("hours", "integer", comment="Hours per week."),
    _f("published", "boolean"),
    _f("publicationStartDate", "date", type_comment=_D),
    _f("publicationEndDate", "date", type_comment=_D),
    _f("locationCity"),
    _f("locationPostcode"),
    _f("locationCountryCode", has_options=True),
    _ro("slug", "collection", deletable=False, type_comment="map siteId -> slug"),
    _f(
        "publishedWebsites",
        "collection",
        has_options=True,
        type_comment="map siteId -> website name",
        comment="Options come as 'publishedWebsites'.",
    ),
    _f("blockScanners", "boolean"),
    _f(
        "matchCriteria_1",
        "collection",
        has_options=True,
        filterable=True,
        type_comment="map optionId -> label",
    ),
    _ro("viewCount", "integer"),
    _ro("applyCount", "integer"),
    _CREATED,
    _MODIFIED,
    _f("remarks", "text", listable=False, filterable=False),
]
for _name in _TEXTFIELDS:
    VACANCY += [
        _f(f"textField_{_name}", "container", type_comment="{title, text}"),
        _f(f"textField_{_name}.title", multilingual=True, comment=_ML),
        _f(
            f"textField_{_name}.text",
            "text",
            multilingual=True,
            filterable=False,
            comment=_ML,
        ),
    ]

RELATION = [
    _UID,
    _ro("internalId", "integer"),
    _f(
        "relation",
        obligatory=True,
        not_empty=True,
        in_list_by_default=True,
        comment="Company name.",
    ),
    _f("customerNr", type_comment="xxxx.xx.xxxx"),
    _f("statusId", "integer", has_options=True, in_list_by_default=True),
    _f("userId", "integer", has_options=True),
    _f("address"),
    _f("postcode"),
    _f("city", in_list_by_default=True),
    _f("countryCode", has_options=True),
    _f("phoneNumber"),
    _f("email"),
    _f("website"),
    _f("cocNumber", comment="Chamber of commerce number."),
    _CREATED,
    _MODIFIED,
]

RELATION_CONTACT = [
    _UID,
    _ro("internalId", "integer"),
    _f(
        "relationId",
        obligatory=True,
        in_list_by_default=True,
        comment="The relation's uid.",
    ),
    _f("function"),
    _f("userId", "integer", has_options=True),
    _f("isPrimaryContact", "boolean"),
    _CREATED,
    _MODIFIED,
    *_person(address=False, phones=False),
]

USER = [
    _ro("uid", "integer", in_list_by_default=True, comment="Users have integer uids."),
    _f("username", obligatory=True, not_empty=True, in_list_by_default=True),
    _f("blocked", "boolean", type_comment='sent as "1" / "0"'),
    _f("functionId", "integer", has_options=True),
    _CREATED,
    *_person(address=False, phones=False),
]

DOCUMENT_TYPE = [
    _UID,
    _f("name", obligatory=True, not_empty=True, in_list_by_default=True),
    _f("forDocuments", "boolean", comment="Usable for documents (not only notes)."),
    _f("forCandidates", "boolean"),
    _f("forVacancies", "boolean"),
    _f("forCustomers", "boolean"),
    _f("forCustomerContacts", "boolean"),
    _f("forTasks", "boolean"),
    _f("forSales", "boolean"),
    _f("forProjects", "boolean"),
]

PROCEDURE = [
    _UID,
    _f("candidateUid", obligatory=True, in_list_by_default=True),
    _f("vacancyUid", obligatory=True, in_list_by_default=True),
    _f("userId", "integer", has_options=True),
    _CREATED,
    _MODIFIED,
    _f("ProcedureStatus1", "container", in_list_by_default=True),
    _f(
        "ProcedureStatus1.uid",
        "integer",
        has_options=True,
        comment="Also accepts the composite '1_<id>' on write.",
    ),
    _ro(
        "ProcedureStatus1.status",
        filterable=False,
        sortable=False,
        comment="Label of the status; follows the content language.",
    ),
]


@dataclass
class ServiceSchema:
    """One service: its fields in declaration order, plus lookups."""

    name: str
    fields: list[FieldDef]
    by_name: dict[str, FieldDef] = field(init=False)

    def __post_init__(self) -> None:
        self.by_name = {f.name: f for f in self.fields}

    def children(self, prefix: str) -> list[FieldDef]:
        """The direct children of a container (or the top level for ``""``)."""
        depth = prefix.count(".") + 1 if prefix else 0
        start = prefix + "." if prefix else ""
        return [
            f
            for f in self.fields
            if f.name.startswith(start) and f.name.count(".") == depth
        ]

    def leaves(self) -> list[FieldDef]:
        """Every field that holds a value (not a container)."""
        return [f for f in self.fields if f.type != "container"]


SERVICES: dict[str, ServiceSchema] = {
    s.name: s
    for s in (
        ServiceSchema("CandidateService", CANDIDATE),
        ServiceSchema("VacancyService", VACANCY),
        ServiceSchema("RelationService", RELATION),
        ServiceSchema("RelationContactService", RELATION_CONTACT),
        ServiceSchema("UserService", USER),
        ServiceSchema("DocumentTypeService", DOCUMENT_TYPE),
        ServiceSchema("ProcedureService", PROCEDURE),
    )
}

#: Booleans sent the PHP way: "str" as "1"/"0", "int" as 1/0.
WIRE = {
    ("CandidateService", "ownsCar"): "str",
    ("CandidateService", "willRelocate"): "int",
    ("UserService", "blocked"): "str",
}

#: Fields whose empty value is sent as a MySQL zero date instead of null.
ZERO_DATES = {
    ("CandidateService", "availableAt"),
    ("CandidateService", "acceptTermsTs"),
}

# ---- option lists ------------------------------------------------------------
# A label is a plain string, or a dict language -> string for labels that follow
# the content language (missing languages fall back to English, then Dutch).

_CANDIDATE_STATUS = {
    1: {"nl": "Nieuw", "en": "New", "de": "Neu", "fr": "Nouveau"},
    2: {"nl": "Actief", "en": "Active", "de": "Aktiv", "fr": "Actif"},
    3: {"nl": "Voorgesteld", "en": "Proposed", "de": "Vorgeschlagen", "fr": "Proposé"},
    4: {"nl": "Geplaatst", "en": "Placed", "de": "Vermittelt", "fr": "Placé"},
    5: {
        "nl": "Niet beschikbaar",
        "en": "Unavailable",
        "de": "Nicht verfügbar",
        "fr": "Indisponible",
    },
    6: {"nl": "Archief", "en": "Archive", "de": "Archiv", "fr": "Archive"},
}
_VACANCY_STATUS = {
    1: {"nl": "Open", "en": "Open", "de": "Offen", "fr": "Ouverte"},
    2: {
        "nl": "In behandeling",
        "en": "In progress",
        "de": "In Bearbeitung",
        "fr": "En cours",
    },
    3: {"nl": "Vervuld", "en": "Filled", "de": "Besetzt", "fr": "Pourvue"},
    4: {"nl": "Gesloten", "en": "Closed", "de": "Geschlossen", "fr": "Fermée"},
}
_CATEGORY = {
    10: {"nl": "ICT", "en": "IT", "de": "IT", "fr": "Informatique"},
    11: {"nl": "Financiën", "en": "Finance", "de": "Finanzen", "fr": "Finance"},
    12: {"nl": "Zorg", "en": "Healthcare", "de": "Pflege", "fr": "Santé"},
    13: {"nl": "Logistiek", "en": "Logistics", "de": "Logistik", "fr": "Logistique"},
    14: {"nl": "Techniek", "en": "Engineering", "de": "Technik", "fr": "Ingénierie"},
    15: {"nl": "Onderwijs", "en": "Education", "de": "Bildung", "fr": "Enseignement"},
    16: {"nl": "Horeca", "en": "Hospitality", "de": "Gastronomie", "fr": "Hôtellerie"},
}
_BRANCHE = {
    101: {"nl": "Bouw", "en": "Construction"},
    102: {"nl": "Detailhandel", "en": "Retail"},
    103: {"nl": "Overheid", "en": "Government"},
    104: {"nl": "Transport", "en": "Transport"},
    105: {"nl": "Zakelijke dienstverlening", "en": "Business services"},
    106: {"nl": "Industrie", "en": "Manufacturing"},
}
_EDUCATION = {
    201: {"nl": "MBO", "en": "Vocational"},
    202: {"nl": "HBO", "en": "Bachelor (applied)"},
    203: {"nl": "WO", "en": "University"},
    204: {"nl": "Middelbare school", "en": "Secondary school"},
}
_GENDER = {
    "m": {"nl": "Man", "en": "Male", "de": "Mann", "fr": "Homme"},
    "f": {"nl": "Vrouw", "en": "Female", "de": "Frau", "fr": "Femme"},
    "u": {"nl": "Onbekend", "en": "Unknown", "de": "Unbekannt", "fr": "Inconnu"},
}
CMS_LANGUAGES = {"nl": "Nederlands", "en": "English", "de": "Deutsch", "fr": "Français"}
_COUNTRIES = {
    "NL": {"nl": "Nederland", "en": "Netherlands"},
    "BE": {"nl": "België", "en": "Belgium"},
    "DE": {"nl": "Duitsland", "en": "Germany"},
    "FR": {"nl": "Frankrijk", "en": "France"},
    "ES": {"nl": "Spanje", "en": "Spain"},
    "TR": {"nl": "Turkije", "en": "Turkey"},
    "PL": {"nl": "Polen", "en": "Poland"},
    "GB": {"nl": "Verenigd Koninkrijk", "en": "United Kingdom"},
}
WEBSITES = {
    1: "werkenbijsandbox.example.nl",
    2: "jobs.example.com",
    3: "stage.example.nl",
}
_RELATION_STATUS = {
    1: {"nl": "Prospect", "en": "Prospect"},
    2: {"nl": "Klant", "en": "Customer"},
    3: {"nl": "Oud-klant", "en": "Former customer"},
}
_USER_FUNCTION = {
    1: {"nl": "Recruiter", "en": "Recruiter"},
    2: {"nl": "Accountmanager", "en": "Account manager"},
    3: {"nl": "Teamleider", "en": "Team lead"},
    4: {"nl": "Beheerder", "en": "Administrator"},
}
_PROCEDURE_STATUS = {
    1: {"nl": "Gesolliciteerd", "en": "Applied", "de": "Beworben", "fr": "Candidature"},
    2: {
        "nl": "Eerste gesprek",
        "en": "First interview",
        "de": "Erstgespräch",
        "fr": "Premier entretien",
    },
    3: {
        "nl": "Tweede gesprek",
        "en": "Second interview",
        "de": "Zweitgespräch",
        "fr": "Second entretien",
    },
    4: {"nl": "Aanbod", "en": "Offer", "de": "Angebot", "fr": "Offre"},
    5: {"nl": "Geplaatst", "en": "Placed", "de": "Vermittelt", "fr": "Placé"},
    6: {"nl": "Afgewezen", "en": "Rejected", "de": "Abgelehnt", "fr": "Refusé"},
}

#: The special source "users" means: the users table (id -> full name).
OPTIONS: dict[str, dict[str, dict | str]] = {
    "CandidateService": {
        "statusId": _CANDIDATE_STATUS,
        "userId": "users",
        "matchCriteria_1": _BRANCHE,
        "matchCriteria_2": _EDUCATION,
        "Person.gender": _GENDER,
        "Person.languageCode": CMS_LANGUAGES,
        "Person.nationalityCode": _COUNTRIES,
        "Person.AddressPrimary.countryCode": _COUNTRIES,
    },
    "VacancyService": {
        "statusId": _VACANCY_STATUS,
        "categoryId": _CATEGORY,
        "userId": "users",
        "locationCountryCode": _COUNTRIES,
        "publishedWebsites": WEBSITES,
        "matchCriteria_1": _BRANCHE,
    },
    "RelationService": {
        "statusId": _RELATION_STATUS,
        "userId": "users",
        "countryCode": _COUNTRIES,
    },
    "RelationContactService": {
        "userId": "users",
        "Person.gender": _GENDER,
        "Person.languageCode": CMS_LANGUAGES,
    },
    "UserService": {
        "functionId": _USER_FUNCTION,
        "Person.gender": _GENDER,
        "Person.languageCode": CMS_LANGUAGES,
    },
    "DocumentTypeService": {},
    "ProcedureService": {
        "userId": "users",
        "ProcedureStatus1.uid": _PROCEDURE_STATUS,
    },
}

#: getOptionLists answers these fields under another key (as the real server does).
OPTION_KEYS = {
    "Person.languageCode": "cmsLanguages",
    "publishedWebsites": "publishedWebsites",
}


def label_in(label: dict | str, language: str) -> str:
    """The label of an option in a content language (English, then Dutch, as fallback)."""
    if isinstance(label, str):
        return label
    lang = "en" if language == "us" else language
    return (
        label.get(lang)
        or label.get("en")
        or label.get("nl")
        or next(iter(label.values()))
    )


def _check() -> None:
    # Every field with options must have an option source, and the other way round.
    for name, service in SERVICES.items():
        declared = {f.name for f in service.fields if f.has_options}
        if declared != set(OPTIONS[name]):
            raise RuntimeError(f"option lists of {name} do not match its fields")


_check()
