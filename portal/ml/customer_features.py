"""Features of a customer at a point in time, from its tier and interaction history only (no free text
leaves this module: summaries are only searched for complaint words), and the reasons shown with a
prediction."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from typing import Any

CHANNELS = ("email", "phone", "meeting", "chat", "letter", "other")
CHANNEL_LABELS = {
    "email": "e-mail",
    "phone": "phone",
    "meeting": "meeting",
    "chat": "chat",
    "letter": "letter",
    "other": "other",
}
TIERS = ("standard", "priority", "key")
NO_CONTACT_DAYS = 400.0  # "never" / "long ago", so the number stays in range
COMPLAINT = re.compile(
    r"\b(complain\w*|late|delay\w*|refund\w*|cancel\w*|unhappy|disappoint\w*|other suppliers|competitor\w*|"
    r"credit note|wrong|damaged|missing|overcharg\w*|escalat\w*)\b",
    re.IGNORECASE,
)

FEATURE_NAMES: tuple[str, ...] = (
    *(f"tier_{tier}" for tier in TIERS),
    "days_since_last",
    "interactions_30d",
    "interactions_90d",
    "interactions_365d",
    "complaints_90d",
    "complaints_365d",
    "mean_gap_days",
    *(f"channel_share_{channel}" for channel in CHANNELS),
    *(f"last_channel_{channel}" for channel in CHANNELS),
)
Interaction = tuple[dt.datetime, str, str]  # (occurred_at, channel, summary)


def features_at(tier: str, interactions: Sequence[Interaction], at: dt.datetime) -> list[float]:
    """The feature vector from the interactions before `at` (the caller passes only those)."""
    values: dict[str, float] = dict.fromkeys(FEATURE_NAMES, 0.0)
    if tier in TIERS:
        values[f"tier_{tier}"] = 1.0
    ages = [(at - occurred).total_seconds() / 86400 for occurred, _, _ in interactions]
    values["days_since_last"] = min(ages) if ages else NO_CONTACT_DAYS
    values["interactions_30d"] = float(sum(age <= 30 for age in ages))
    values["interactions_90d"] = float(sum(age <= 90 for age in ages))
    values["interactions_365d"] = float(sum(age <= 365 for age in ages))
    complaints = [age for age, (_, _, summary) in zip(ages, interactions, strict=True) if COMPLAINT.search(summary)]
    values["complaints_90d"] = float(sum(age <= 90 for age in complaints))
    values["complaints_365d"] = float(sum(age <= 365 for age in complaints))
    recent = sorted(occurred for occurred, _, _ in interactions)[-6:]
    gaps = [(later - earlier).total_seconds() / 86400 for earlier, later in zip(recent, recent[1:], strict=False)]
    values["mean_gap_days"] = sum(gaps) / len(gaps) if gaps else NO_CONTACT_DAYS
    year = [channel for (_, channel, _), age in zip(interactions, ages, strict=True) if age <= 365]
    for channel in CHANNELS:
        values[f"channel_share_{channel}"] = year.count(channel) / len(year) if year else 0.0
    if interactions:
        last_channel = max(interactions, key=lambda item: item[0])[1]
        if last_channel in CHANNELS:
            values[f"last_channel_{last_channel}"] = 1.0
    return [values[name] for name in FEATURE_NAMES]


def describe(name: str, value: float) -> str:
    """A reason as staff read it, e.g. "last contact 75 days ago"."""
    if name.startswith("tier_"):
        tier = name.removeprefix("tier_")
        return f"{'key account' if tier == 'key' else tier + ' tier'}"
    if name.startswith("channel_share_"):
        channel = CHANNEL_LABELS[name.removeprefix("channel_share_")]
        return f"{value:.0%} of this year's contacts by {channel}"
    if name.startswith("last_channel_"):
        return f"last contact by {CHANNEL_LABELS[name.removeprefix('last_channel_')]}"
    texts = {
        "days_since_last": "no contact yet" if value >= NO_CONTACT_DAYS else f"last contact {value:.0f} days ago",
        "interactions_30d": f"{value:.0f} interactions in the last 30 days",
        "interactions_90d": f"{value:.0f} interactions in the last 90 days",
        "interactions_365d": f"{value:.0f} interactions in the last year",
        "complaints_90d": f"{value:.0f} complaints in the last 90 days",
        "complaints_365d": f"{value:.0f} complaints in the last year",
        "mean_gap_days": f"usually {value:.0f} days between contacts",
    }
    return texts.get(name, name)


def top_reasons(
    feature_values: Sequence[float], contributions: Sequence[float], *, count: int = 3
) -> list[dict[str, Any]]:
    """The features that pushed hardest towards the predicted label (indicator features only when set)."""
    ranked = sorted(range(len(FEATURE_NAMES)), key=lambda index: contributions[index], reverse=True)
    reasons = []
    for index in ranked:
        name, value, weight = FEATURE_NAMES[index], float(feature_values[index]), float(contributions[index])
        if weight <= 0:
            break
        indicator = name.startswith(("tier_", "last_channel_"))
        if indicator and value == 0:
            continue
        reasons.append({"feature": name, "text": describe(name, value), "weight": round(weight, 3)})
        if len(reasons) == count:
            break
    return reasons
