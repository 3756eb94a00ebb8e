"""The vocabulary of governance: data classes, policy actions, knowledge-base labels, prompt part kinds."""

from __future__ import annotations

PERSON = "PERSON"
EMAIL = "EMAIL"
PHONE = "PHONE"
POSTAL_ADDRESS = "POSTAL_ADDRESS"
NATIONAL_ID = "NATIONAL_ID"
PAYMENT_CARD = "PAYMENT_CARD"
BANK_ACCOUNT = "BANK_ACCOUNT"
IP_ADDRESS = "IP_ADDRESS"
CREDENTIAL = "CREDENTIAL"
DATE_OF_BIRTH = "DATE_OF_BIRTH"
HEALTH = "HEALTH"
FINANCIAL = "FINANCIAL"
CUSTOMER_FIELD = "CUSTOMER_FIELD"
ACCOUNT_NUMBER = "ACCOUNT_NUMBER"
DATE = "DATE"

DATA_CLASSES: tuple[str, ...] = (
    PERSON,
    EMAIL,
    PHONE,
    POSTAL_ADDRESS,
    NATIONAL_ID,
    PAYMENT_CARD,
    BANK_ACCOUNT,
    IP_ADDRESS,
    CREDENTIAL,
    DATE_OF_BIRTH,
    DATE,
    HEALTH,
    FINANCIAL,
    CUSTOMER_FIELD,
    ACCOUNT_NUMBER,
)

DATA_CLASS_DESCRIPTIONS: dict[str, str] = {
    PERSON: "Names of people",
    EMAIL: "E-mail addresses",
    PHONE: "Phone and fax numbers",
    POSTAL_ADDRESS: "Street addresses",
    NATIONAL_ID: "Social security and other national identity numbers",
    PAYMENT_CARD: "Credit and debit card numbers (Luhn-checked)",
    BANK_ACCOUNT: "IBANs and other bank account numbers",
    IP_ADDRESS: "IPv4 and IPv6 addresses",
    CREDENTIAL: "API keys, tokens, passwords, private keys",
    DATE_OF_BIRTH: "Dates of birth",
    DATE: "Other dates written in the text (meetings, deadlines); dates of birth are their own class",
    HEALTH: "Health information (conditions, treatments)",
    FINANCIAL: "Personal financial information (salary, debt, credit score)",
    CUSTOMER_FIELD: "Values from the local customer records",
    ACCOUNT_NUMBER: "Customer account numbers from the local records that are not IBANs",
}

# Actions, from the most permissive to the most restrictive: "several roles -> most restrictive" is max().
# An abstraction is stricter than a placeholder: nothing is restored and no value is kept for the conversation.
ALLOW = "allow"
PSEUDONYMIZE = "pseudonymize"
ABSTRACT = "abstract"
REDACT = "redact"
BLOCK = "block"
ACTIONS: tuple[str, ...] = (ALLOW, PSEUDONYMIZE, ABSTRACT, REDACT, BLOCK)
ACTION_DESCRIPTIONS: dict[str, str] = {
    ALLOW: "sent as is",
    PSEUDONYMIZE: "replaced by a placeholder, restored in the answer",
    ABSTRACT: "replaced by a generalisation (an age band, a city, a range, a role or tier), not restored",
    REDACT: "removed for good",
    BLOCK: "nothing with it may leave",
}


def personal_classes() -> tuple[str, ...]:
    """The classes a sensitive assistant profile abstracts at least: every class but credentials (which are
    not about a person, and blocked by default). A function, so classes added to DATA_CLASSES count too."""
    return tuple(data_class for data_class in DATA_CLASSES if data_class != CREDENTIAL)


# Knowledge-base labels (KnowledgeBase.classification) and what may happen to a part carrying one.
PUBLIC = "public"
INTERNAL = "internal"
CONFIDENTIAL = "confidential"
LOCAL_ONLY = "local_only"
LABELS: tuple[str, ...] = (PUBLIC, INTERNAL, CONFIDENTIAL, LOCAL_ONLY)
LABEL_DESCRIPTIONS: dict[str, str] = {
    PUBLIC: "Public",
    INTERNAL: "Internal",
    CONFIDENTIAL: "Confidential",
    LOCAL_ONLY: "Local only (never leaves the server)",
}
SEND = "send"  # may enter a cloud prompt (after the data-class rules)
WITHHOLD = "withhold"  # left out of cloud prompts
LOCAL = "local"  # the whole prompt may only go to a local model
LABEL_ACTIONS: tuple[str, ...] = (SEND, WITHHOLD, LOCAL)
LABEL_ACTION_DESCRIPTIONS: dict[str, str] = {
    SEND: "may go to cloud models",
    WITHHOLD: "left out of cloud prompts",
    LOCAL: "answered by the local model only",
}

PART_KIND_LABELS: dict[str, str] = {
    "instructions": "Instructions",
    "history": "Conversation history",
    "chunk": "Knowledge-base passage",
    "memory": "Memory",
    "customer": "Customer data",
    "question": "Question",
}


def most_restrictive(actions: list[str], order: tuple[str, ...] = ACTIONS) -> str:
    """The strictest of several actions (unknown values count as the strictest: fail closed)."""
    if not actions:
        return order[-1]
    return max(actions, key=lambda action: order.index(action) if action in order else len(order))
