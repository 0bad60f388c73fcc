"""The leakage audit: columns that are probably only known after the outcome, with evidence.

Time-stamped tables (activities, deals, attribute history) are masked at each cutoff, so the
features built from them cannot leak; a property test proves it. Attributes without a history
have no timestamp: a CRM export holds their value at export time, after many outcomes were
known. They are where leaks enter, so they are what this audit examines.

Everything is judged **per unit** (lead, or opportunity for exports of that shape), on the
unit's final state: one row per unit and its final outcome (won, or closed without a win).
Training snapshots repeat a unit at many cutoffs, and repetition is not evidence. A pattern
counts as evidence only when chance would produce it with probability below `p_value`.

The checks, each with evidence a person can verify:

- `single_feature_auc`: the column alone ranks won units above the others better than
  `max_auc`; honest attributes rarely do (the best other column is shown for comparison);
- `filled_in_one_class` (or `missing_in_one_class`): the units where the column is filled in
  (or empty) are all of one outcome, far beyond chance ("filled only for the units that won");
- `filled_for_one_outcome`: filled in for most units of one outcome and for few of the
  others (a boolean or a small count is enough);
- `value_in_one_class`: a value held only by units of one outcome, far beyond chance
  (`close_value = 0` for every loss);
- `timestamp_after_outcome`: a timestamp column that mostly falls on or after the close;
- `spells_outcome`: values that say won/lost/closed/converted with skewed outcomes, or a name
  such as `close_value`, `loss_reason` or `stage` (a name alone is only marked `review`);
- `later_state`: a name that says the value is the state at export time or a person's
  judgement (`last_activity`, `lead_quality`, `rating`) on a column that is also strong;
- `during_outcome`: a name that says the value was measured during or after the sales process
  or the deciding contact (`duration`, `stage`, `days_to_close`, `cycle`) on a column that is
  also strong;
- `lifecycle_group`: columns that share such lifecycle words, with the columns most correlated
  with them, measured together: what the group adds, out of fold, to a model of the other
  attributes. Each alone may look weak; together they can carry the outcome.

For every column it drops, the audit reports the price: the out-of-fold AUC of a model of the
attributes with and without it (or its group).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Collection
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
from scipy.stats import fisher_exact
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold

OUTCOME_NAME = re.compile(
    r"(?:^|_)(?:won|win|wins|lost|loss|losses|closed?|close_(?:date|value|reason|amount)|"
    r"reason|outcome|stage|status|converted|conversion|churn(?:ed)?|disqualif\w*|result|tags?)"
    r"(?:_|$)"
)
OUTCOME_VALUE = re.compile(
    r"(?:^|_)(?:won|lost|closed|converted|disqualified|churned|lost_to|closed_by|not_interested|"
    r"already_a_student|invalid_number|wrong_number)(?:_|$)"
)
LATER_STATE_NAME = re.compile(
    r"(?:^|_)(?:last|latest|updated|modified|quality|rating|rated|assessment|"
    r"assigned|notes?|comments?|feedback|priority|temperature|grade)(?:_|$)"
)
# Words saying a value was measured along the sales process or during the deciding contact.
DURING_NAME = re.compile(
    r"(?:^|_)(?:durations?|elapsed|stages?|cycles?|closing|close|negotiat\w*|proposals?|"
    r"won_date|sla|time_to\w*|days_to\w*|days_in\w*|days_until|to_close|until_close)(?:_|$)"
)
# Weaker lifecycle words: they place a column in a group but never flag it alone.
LIFECYCLE_NAME = re.compile(  # "days" (a count of them), not "day" (a calendar day)
    r"(?:^|_)(?:days|elapsed|durations?|stages?|cycles?|closing|close|ratio|share|pct|"
    r"percent|total|changes?|transitions?|steps?|touch(?:es|points?)?|calls?|minutes?|"
    r"seconds?|hours?)(?:_|$)"
)
FLAG = "flagged"
REVIEW = "review"
GROUP_CORRELATION = 0.8  # a column this correlated with a lifecycle column joins its group
MAX_UNITS = 30_000  # units the model-based checks are measured on (a stratified sample)
MAX_VALUES = 50  # most frequent values tested for value_in_one_class
MOSTLY = 0.25  # filled_for_one_outcome: filled for at least this share of one outcome's units
MEMBER_AUC = 0.55  # a lifecycle group's member is flagged if this strong alone, or if it adds
MEMBER_LIFT = 0.01  # ... at least this AUC to the clean columns on its own
Add = Callable[..., None]  # add(column, check, evidence, verdict=FLAG)


@dataclass(frozen=True)
class Finding:
    column: str
    check: str
    evidence: str
    verdict: str  # flagged (data evidence), review (a name only) or allowed

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass(frozen=True)
class AuditRules:
    """How much evidence the audit asks for (the config's `audit` section)."""

    max_auc: float = 0.9
    review_auc: float = 0.65
    p_value: float = 1e-6
    group_lift: float = 0.02
    allow: Collection[str] = ()


@dataclass(frozen=True)
class Audit:
    """What the audit found, and what it measured for every column."""

    findings: list[Finding]
    aucs: pd.Series  # each column's AUC alone, per unit, largest first
    evidence: dict[str, dict[str, object]] = field(default_factory=dict)  # per candidate
    price: dict[str, tuple[float, float]] = field(default_factory=dict)  # AUC with, without

    def flagged(self) -> list[str]:
        return flagged_columns(self.findings)


def _snake(name: str) -> str:
    """A name as words joined by _: 'DaysToClose', 'days to close' and 'days_to_close' alike."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", str(name))
    return re.sub(r"[^0-9a-z]+", "_", spaced.lower()).strip("_")


def single_feature_auc(values: pd.Series, y: np.ndarray, seed: int = 0) -> float:
    """How well one column alone ranks the classes, 0.5 to 1 (direction-free).

    Numbers rank by value with missing as its own lowest level; text columns by an out-of-fold
    win rate per value, so a column of unique ids cannot score by memorising.
    """
    y = np.asarray(y).astype(int)
    if len(np.unique(y)) < 2:
        return float("nan")
    if pd.api.types.is_numeric_dtype(values):
        filled = pd.to_numeric(values, errors="coerce").astype(float)
        score = filled.fillna(filled.min() - 1 if filled.notna().any() else 0).to_numpy()
    else:
        text = values.astype(object).where(values.notna(), "<missing>").astype(str).to_numpy()
        score = np.empty(len(y), dtype=float)
        prior, weight = y.mean(), 10.0
        folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=seed)
        for fit_idx, eval_idx in folds.split(text, y):
            stats = (
                pd.DataFrame({"v": text[fit_idx], "y": y[fit_idx]})
                .groupby("v")["y"]
                .agg(["sum", "count"])
            )
            rate = (stats["sum"] + prior * weight) / (stats["count"] + weight)
            score[eval_idx] = pd.Series(text[eval_idx]).map(rate).fillna(prior).to_numpy()
    auc = roc_auc_score(y, score)
    return float(max(auc, 1 - auc))


def _class_word(label: int) -> str:
    return "won" if label == 1 else "not won"


def _pure(n: int, wins: int, base: float, p_value: float) -> int | None:
    """The outcome a group of `n` units all share, when chance (the base rate) would make that
    less likely than `p_value`; else None."""
    if n == 0 or 0 < wins < n or not 0 < base < 1:
        return None
    label = 1 if wins == n else 0
    chance = n * math.log(base if label == 1 else 1 - base)
    return label if chance < math.log(p_value) else None


def _one_class_groups(
    groups: pd.Series, y: np.ndarray, p_value: float, top: int | None = None
) -> list[tuple[str, int, int, float]]:
    """Groups whose units are all of one outcome, beyond chance. Returns (group, units,
    outcome shared, chance of that at the base rate)."""
    base = float(np.mean(y))
    frame = pd.DataFrame({"g": groups.astype(str).to_numpy(), "y": y})
    stats = frame.groupby("g")["y"].agg(["sum", "count"]).sort_values("count", ascending=False)
    if top is not None:
        stats = stats.head(top)
    tests = max(len(stats), 1)  # each value is a test: ask more of each when there are many
    out = []
    for group, row in stats.iterrows():
        n, wins = int(row["count"]), int(row["sum"])
        label = _pure(n, wins, base, p_value / tests)
        if label is not None:
            chance = (base if label == 1 else 1 - base) ** n
            out.append((str(group), n, label, chance))
    return out


def _filled_for_one_outcome(
    present: np.ndarray, y: np.ndarray, p_value: float
) -> tuple[int, float, float, float] | None:
    """Filled in for most units of one outcome and for few of the others: (the outcome, its
    filled share, the others' filled share, Fisher's p) or None."""
    won, other = y == 1, y == 0
    if not won.any() or not other.any():
        return None
    share_won, share_other = present[won].mean(), present[other].mean()
    for label, mine, theirs in ((1, share_won, share_other), (0, share_other, share_won)):
        if mine >= MOSTLY and theirs <= mine / 10:
            table = [
                [int(present[y == label].sum()), int((~present[y == label]).sum())],
                [int(present[y != label].sum()), int((~present[y != label]).sum())],
            ]
            p = float(fisher_exact(table, alternative="greater")[1])
            if p < p_value:
                return label, float(mine), float(theirs), p
    return None


def _oof_auc(X: pd.DataFrame, y: np.ndarray, seed: int = 0) -> float:
    """Out-of-fold ROC AUC of a small LightGBM model of `X` (3 folds)."""
    import lightgbm as lgb

    if X.shape[1] == 0 or len(np.unique(y)) < 2:
        return 0.5
    data = X.copy()
    for c in data.columns:
        if not pd.api.types.is_numeric_dtype(data[c]):
            data[c] = data[c].astype("category")
    data.columns = [f"c{i}" for i in range(data.shape[1])]  # LightGBM-safe names
    score = np.zeros(len(y))
    folds = StratifiedKFold(n_splits=3, shuffle=True, random_state=seed)
    for fit_idx, eval_idx in folds.split(data, y):
        model = lgb.LGBMClassifier(
            n_estimators=120,
            learning_rate=0.08,
            num_leaves=15,
            min_child_samples=20,
            subsample=0.8,
            subsample_freq=1,
            colsample_bytree=0.8,
            random_state=seed,
            n_jobs=2,
            verbose=-1,
        ).fit(data.iloc[fit_idx], y[fit_idx])
        score[eval_idx] = model.predict_proba(data.iloc[eval_idx])[:, 1]
    return float(roc_auc_score(y, score))


def _sample(X: pd.DataFrame, y: np.ndarray, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """At most MAX_UNITS units, stratified, for the model-based checks."""
    if len(y) <= MAX_UNITS:
        return X.reset_index(drop=True), y
    rng = np.random.default_rng(seed)
    keep = np.sort(rng.choice(len(y), MAX_UNITS, replace=False))
    return X.iloc[keep].reset_index(drop=True), y[keep]


def _rank(values: pd.Series) -> pd.Series:
    if pd.api.types.is_numeric_dtype(values):
        return pd.to_numeric(values, errors="coerce").rank()
    return values.astype(object).where(values.notna(), None).astype("category").cat.codes


def lifecycle_groups(X: pd.DataFrame, candidates: Collection[str]) -> list[list[str]]:
    """Columns whose names carry lifecycle words (days, stage, duration, ratio, ...), grouped:
    those with a strong word (stage, duration, to close) seed a group; the other lifecycle
    columns and any column correlated above GROUP_CORRELATION with a member join it."""
    named = [c for c in candidates if LIFECYCLE_NAME.search(_snake(c))]
    seeds = [c for c in named if DURING_NAME.search(_snake(c))]
    if not seeds:
        return []
    group = list(dict.fromkeys([*seeds, *named]))
    ranks = {c: _rank(X[c]) for c in candidates}
    for column in candidates:
        if column in group:
            continue
        for member in list(group):
            both = ranks[column].notna() & ranks[member].notna()
            if both.sum() > 30 and abs(ranks[column][both].corr(ranks[member][both])) >= (
                GROUP_CORRELATION
            ):
                group.append(column)
                break
    return [group]


def audit_columns(
    X: pd.DataFrame,
    y: np.ndarray,
    candidates: Collection[str],
    rules: AuditRules | None = None,
    *,
    closed_at: pd.Series | None = None,
    timestamps: pd.DataFrame | None = None,
    keys: pd.DataFrame | None = None,
) -> Audit:
    """Audit the `candidates` columns of X against the units' final outcomes.

    Args:
        X: one row per unit (lead or opportunity); every attribute (candidates and the rest,
            for comparison).
        y: each unit's final outcome, 1 = won.
        candidates: the columns that could carry post-outcome information (attributes).
        closed_at: when each unit closed (NaT if open), for the timestamp check.
        timestamps: timestamp columns of each unit (never features), for that check.
        keys: join keys of each unit (e.g. account_id). A key is no feature, but the features
            built through it are; a key filled in only once the outcome is known leaks
            through all of them.
    """
    rules = rules or AuditRules()
    y = np.asarray(y).astype(int)
    X = X.reset_index(drop=True)
    allowed = {_snake(a) for a in rules.allow}
    aucs = pd.Series({c: single_feature_auc(X[c], y) for c in X.columns}, dtype=float)
    aucs = aucs.sort_values(ascending=False)
    findings: list[Finding] = []
    evidence: dict[str, dict[str, object]] = {}

    def add(column: str, check: str, text: str, verdict: str = FLAG) -> None:
        if _snake(column) in allowed:
            verdict = "allowed"
        findings.append(Finding(column, check, text, verdict))

    for column in candidates:
        evidence[column] = _column_checks(X[column], column, y, aucs, rules, add)
    for column in keys.columns if keys is not None else ():
        _presence_checks(keys[column], column, y, rules.p_value, add, through_key=True)
    if timestamps is not None and closed_at is not None:
        _timestamp_checks(timestamps, closed_at.reset_index(drop=True), add)
    price = _groups_and_price(X, y, list(candidates), findings, rules, add, evidence)
    backed = flagged_columns(findings)  # a name is evidence only beside the data's
    for column in candidates:
        if OUTCOME_NAME.search(_snake(column)):
            note = (
                ""
                if column in backed
                else (f"; no data evidence (AUC {aucs[column]:.3f}): please review")
            )
            add(column, "spells_outcome", f"its name {column!r} reads like an outcome field"
                + note, FLAG if column in backed else REVIEW)  # fmt: skip
    return Audit(findings, aucs, evidence, price)


def _column_checks(
    values: pd.Series,
    column: str,
    y: np.ndarray,
    aucs: pd.Series,
    rules: AuditRules,
    add: Add,
) -> dict[str, object]:
    """Every check of one column; its evidence for the report."""
    auc = aucs[column]
    others = aucs.drop(index=column).dropna()
    best_other = f"{others.iloc[0]:.3f} ({others.index[0]})" if len(others) else "none"
    present = values.notna().to_numpy()
    name = _snake(column)
    if auc >= rules.max_auc:
        add(column, "single_feature_auc", f"AUC {auc:.3f} on its own, per unit; the best "
            f"other column reaches {best_other}")  # fmt: skip
    _presence_checks(values, column, y, rules.p_value, add)
    if pd.api.types.is_numeric_dtype(values):
        frequent = values.value_counts().head(20).index
        grouped = values.where(values.isin(frequent)).dropna()
    else:
        grouped = values.dropna()
    pure = (
        _one_class_groups(grouped, y[grouped.index.to_numpy()], rules.p_value, MAX_VALUES)
        if len(grouped)
        else []
    )
    if pure:
        shown = "; ".join(
            f"{g!r}: {n:,} units, all {_class_word(label)} (chance {chance:.1e})"
            for g, n, label, chance in pure[:3]
        )
        share = sum(n for _, n, _, _ in pure) / max(len(values), 1)
        add(column, "value_in_one_class", f"{len(pure)} value(s) are held by units of one "
            f"outcome only, {share:.0%} of units; e.g. {shown}")  # fmt: skip
    if not pd.api.types.is_numeric_dtype(values):
        _spelled_outcomes(values, column, y, add)
    if LATER_STATE_NAME.search(name) and auc >= rules.review_auc:
        add(column, "later_state", f"its name {column!r} says it holds a later state or "
            f"someone's judgement, and it is strong on its own (AUC {auc:.3f}; best other "
            f"column {best_other})")  # fmt: skip
    if DURING_NAME.search(name) and auc >= rules.review_auc:
        add(column, "during_outcome", f"its name {column!r} says it was measured during or "
            f"after the sales process or the deciding contact, and it is strong on its own "
            f"(AUC {auc:.3f}; best other column {best_other})")  # fmt: skip
    won, other = y == 1, y == 0
    return {
        "auc_alone": round(float(auc), 4),
        "filled_won": round(float(present[won].mean()), 4) if won.any() else None,
        "filled_not_won": round(float(present[other].mean()), 4) if other.any() else None,
        "distinct_values": int(values.nunique()),
        "checks": "single_feature_auc, filled/missing_in_one_class, filled_for_one_outcome, "
        "value_in_one_class, spells_outcome, later_state, during_outcome, lifecycle_group",
    }


def _presence_checks(
    values: pd.Series,
    column: str,
    y: np.ndarray,
    p_value: float,
    add: Add,
    through_key: bool = False,
) -> None:
    """Whether being filled in (or empty) marks one outcome."""
    present = values.notna().to_numpy()
    if not 0 < present.sum() < len(present):
        return
    suffix = ": every feature built through it leaks" if through_key else ""
    what = "the key" if through_key else "it"
    state = pd.Series(np.where(present, "filled in", "empty"))
    for group, n, label, chance in _one_class_groups(state, y, p_value):
        check = "filled_in_one_class" if group == "filled in" else "missing_in_one_class"
        outcome = _class_word(label)
        add(column, check, f"the {n:,} units where {what} is {group} all ended {outcome} "
            f"(chance at the base rate {chance:.1e}){suffix}")  # fmt: skip
    one_sided = _filled_for_one_outcome(present, y, p_value)
    if one_sided is not None and not through_key:
        label, mine, theirs, p = one_sided
        add(column, "filled_for_one_outcome", f"filled in for {mine:.0%} of units that ended "
            f"{_class_word(label)} and {theirs:.0%} of the others (Fisher p {p:.1e}): filled "
            "in once the outcome was known")  # fmt: skip


def _spelled_outcomes(values: pd.Series, column: str, y: np.ndarray, add: Add) -> None:
    text = values.dropna().astype(str)
    folded = text.str.lower().str.replace(r"[^0-9a-z]+", "_", regex=True)
    spelled = text[folded.str.contains(OUTCOME_VALUE)]
    if len(spelled):
        win_rate = y[spelled.index.to_numpy()].mean()
        if abs(win_rate - y.mean()) >= 0.15:
            add(column, "spells_outcome", f"{len(spelled):,} values name an outcome, e.g. "
                f"{', '.join(map(repr, spelled.drop_duplicates().head(3)))}; their win rate is "
                f"{win_rate:.0%} against {y.mean():.0%} overall")  # fmt: skip


def _timestamp_checks(timestamps: pd.DataFrame, closed_at: pd.Series, add: Add) -> None:
    closed = closed_at.notna().to_numpy()
    for column in timestamps.columns:
        stamps = timestamps[column].reset_index(drop=True)
        both = closed & stamps.notna().to_numpy()
        if both.sum() < 20:
            continue
        after = (stamps[both] >= closed_at[both] - pd.Timedelta(days=1)).mean()
        if after >= 0.5:
            add(column, "timestamp_after_outcome", f"{after:.0%} of {int(both.sum()):,} closed "
                "units have it on or after the close (within a day)")  # fmt: skip


def _groups_and_price(
    X: pd.DataFrame,
    y: np.ndarray,
    candidates: list[str],
    findings: list[Finding],
    rules: AuditRules,
    add: Add,
    evidence: dict[str, dict[str, object]],
) -> dict[str, tuple[float, float]]:
    """The lifecycle groups measured together, and the price of every drop.

    A group's lift is what it adds, out of fold, to a model of the attributes no check has
    flagged (a leak elsewhere would otherwise hide it). A member is flagged when it is of some
    strength alone (MEMBER_AUC) or the group loses lift without it; a lifecycle-sounding honest
    column with no signal stays. The price of a drop is the AUC of the clean attributes with
    the column (or group) and without it."""
    if len(np.unique(y)) < 2 or not candidates:
        return {}
    sample, ys = _sample(X[candidates], y)
    aucs = {c: single_feature_auc(sample[c], ys) for c in candidates}
    for group in lifecycle_groups(sample, candidates):
        flagged = set(flagged_columns(findings))
        base = [c for c in candidates if c not in flagged and c not in group]
        without = _oof_auc(sample[base], ys)
        with_group = _oof_auc(sample[base + group], ys)
        lift = with_group - without
        for column in group:
            evidence.setdefault(column, {})["group_lift"] = round(lift, 4)
        if lift < rules.group_lift:
            continue
        members = _contributing(sample, ys, base, group, lift, without, aucs)
        for column in members:
            add(column, "lifecycle_group", f"one of {', '.join(members)} (named for the sales "
                f"process, its stages or durations), whose group adds {lift:+.3f} AUC out of "
                f"fold to the clean attributes ({without:.3f} -> {with_group:.3f}, per "
                "unit)")  # fmt: skip
    flagged = flagged_columns(findings)
    clean = [c for c in candidates if c not in flagged]
    floor = _oof_auc(sample[clean], ys)
    price = {c: (_oof_auc(sample[[*clean, c]], ys), floor) for c in flagged if c in candidates}
    for column, (with_it, without) in price.items():
        evidence[column]["auc_with_and_without"] = (round(with_it, 4), round(without, 4))
    return price


def _contributing(
    sample: pd.DataFrame,
    y: np.ndarray,
    base: list[str],
    group: list[str],
    lift: float,
    without: float,
    aucs: dict[str, float],
) -> list[str]:
    """The members of a group that carry outcome information themselves: of some strength
    alone (MEMBER_AUC), or adding to the clean columns on their own (MEMBER_LIFT). Redundant
    leaks each pass the second test; an honest column that only shares the group's words
    passes neither."""
    out = []
    for column in group:
        added = _oof_auc(sample[[*base, column]], y) - without if aucs[column] < MEMBER_AUC else 1
        if added >= MEMBER_LIFT:
            out.append(column)
    return out


def flagged_columns(findings: list[Finding]) -> list[str]:
    """Columns with at least one finding backed by data (not review-only, not allowed)."""
    seen: dict[str, None] = {}
    for finding in findings:
        if finding.verdict == FLAG:
            seen.setdefault(finding.column, None)
    return list(seen)
