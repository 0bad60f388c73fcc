"""The run configuration: one YAML file loaded into a frozen, validated model."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from leadscore.models.scores import SCORE_COLUMNS
from leadscore.pipeline.errors import InputError
from leadscore.pipeline.redaction import redact_text, redacted


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# Names that reach SQL or MLflow filters. They are quoted as identifiers (SQLAlchemy) or refused
# when they hold a quote (MLflow) where they are used; these patterns refuse anything else odd
# at load time, so a hostile or mistyped name never gets that far.
SQL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
COLUMN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_ \-]{0,62}")
MLFLOW_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\- ]{0,199}")


def _matching(pattern: re.Pattern[str], value: str, what: str) -> str:
    if not pattern.fullmatch(value):
        raise ValueError(f"{value!r} is not a valid {what} (expected to match {pattern.pattern})")
    return value


class CsvOptions(_Section):
    delimiter: str = Field(",", description="Field separator.")
    encoding: str = Field(
        "utf-8", description="Text encoding (a UTF-8 byte-order mark is handled)."
    )
    quotechar: str = Field('"', description="Quote character.")
    null_values: tuple[str, ...] = Field(
        ("",), description="Exact tokens read as missing; nothing else is (so 'None' survives)."
    )


class TimestampSpec(_Section):
    format: str | None = Field(None, description="strptime format; None: ISO 8601 / inferred.")
    timezone: str = Field("UTC", description="Zone of values written without one.")


class SourceConfig(_Section):
    """Where one table comes from and how its columns map onto the canonical names."""

    path: str | None = Field(None, description="File relative to --data (.csv or .parquet).")
    url: str | None = Field(None, description="SQLAlchemy URL; ${ENV_VAR} is expanded.")
    table: str | None = Field(None, description="Table to read from a database source.")
    query: str | None = Field(
        None, description="SQL query to read from a database source (instead of table)."
    )
    format: Literal["csv", "parquet"] | None = Field(
        None, description="csv or parquet; None: from the file suffix."
    )
    csv: CsvOptions = CsvOptions()
    rename: dict[str, str] = Field(default_factory=dict, description="source name -> canonical")
    timestamps: dict[str, TimestampSpec] = Field(default_factory=dict)
    values: dict[str, dict[str, str | None]] = Field(
        default_factory=dict,
        description="column -> {from: to}; null makes it missing; column '*': every text column",
    )
    drop_rows_without: tuple[str, ...] = Field(
        (), description="Rows missing any of these columns are dropped (and reported)."
    )
    duplicates: Literal["fail", "first", "last"] = Field(
        "fail",
        description="Rows repeating the table's key: stop (fail), or keep the first or the last "
        "of each (the others are dropped and counted in the validation report).",
    )
    closed_before_created: Literal["fail", "drop"] = Field(
        "fail",
        description="Deals (or units) closed before they were created: stop, or drop them "
        "(counted in the validation report).",
    )
    generated_id: bool = Field(
        False,
        description="Leads only: the export has no id column; number the rows (1, 2, ...) as "
        "lead_id, in the source's order.",
    )

    @model_validator(mode="after")
    def _one_location(self) -> SourceConfig:
        if (self.path is None) == (self.url is None):
            raise ValueError("give either path (a file) or url (a database), not both or neither")
        if self.url is not None and (self.table is None) == (self.query is None):
            raise ValueError("a database source needs exactly one of table or query")
        return self


class LookupConfig(SourceConfig):
    """A small table joined onto the leads (scoring unit) by a key, e.g. product -> price."""

    join_on: str = Field(description="Key column in the leads table (after renames).")
    key: str | None = Field(None, description="Key column in the lookup; default: join_on.")
    columns: tuple[str, ...] | None = Field(None, description="Columns to bring; default: all.")
    prefix: str = Field("", description="Prefix for the joined columns.")


class DataConfig(_Section):
    dir: str = Field("demo_data", description="Folder the source paths are relative to; --data.")
    shape: Literal["events", "unit", "flat"] = Field(
        "events",
        description="events: leads/accounts/activities/deals; unit: one row per scored unit with "
        "its own outcome and dates; flat: one row per lead with an outcome and no timestamps",
    )
    leads: SourceConfig | None = None
    accounts: SourceConfig | None = None
    activities: SourceConfig | None = None
    deals: SourceConfig | None = None
    attribute_history: SourceConfig | None = Field(
        None,
        description="Field history of lead or account attributes (Salesforce LeadHistory, "
        "HubSpot property history): columns lead_id or account_id, field, value, changed_at. "
        "Such a column takes at each cutoff the value of its newest change before it.",
    )
    lookups: tuple[LookupConfig, ...] = ()

    @model_validator(mode="after")
    def _shape_needs(self) -> DataConfig:
        if self.shape != "events" and self.leads is None:
            raise ValueError(f"shape {self.shape!r} needs a leads source (the scored unit)")
        if self.shape != "events" and self.deals is not None:
            raise ValueError(f"shape {self.shape!r} takes outcomes from leads; remove deals")
        if self.shape == "flat" and self.attribute_history is not None:
            raise ValueError("shape 'flat' has no time: an attribute history needs timestamps")
        return self


class ValidationConfig(_Section):
    min_wins: int = Field(120, ge=1, description="Fewest labelled wins to train (Einstein: 120).")
    min_losses: int = Field(120, ge=1, description="Fewest labelled non-wins to train.")


class AuditConfig(_Section):
    policy: Literal["drop", "warn", "fail"] = Field(
        "drop",
        description="What train does with flagged columns: drop, warn (keep them), fail (exit 2).",
    )
    max_auc: float = Field(
        0.9, gt=0.5, le=1, description="A column alone above this AUC (per unit) is a leak."
    )
    review_auc: float = Field(
        0.65,
        gt=0.5,
        le=1,
        description="A column named like a later state or a measure of the sales process, and "
        "this strong alone, is a leak.",
    )
    p_value: float = Field(
        1e-6,
        gt=0,
        lt=1,
        description="A pattern is evidence only when chance would make it less likely than this "
        "(one outcome for every unit filled in, or holding a value).",
    )
    group_lift: float = Field(
        0.02,
        ge=0,
        le=1,
        description="A group of lifecycle columns (stages, durations, days to close, ratios) "
        "adding this much out-of-fold AUC to the other attributes is a leak.",
    )
    allow: tuple[str, ...] = Field((), description="Columns you vouch for: never flagged.")


class SnapshotConfig(_Section):
    frequency: str = Field("MS", description="pandas offset alias for cutoffs (MS = month start).")
    conversion_window_days: int = Field(
        90, gt=0, description="Label: won within this many days after the cutoff."
    )
    max_lead_age_days: int | None = Field(
        365,
        gt=0,
        description="Training only: older open leads are not used as examples.",
    )
    history_start_days: int = Field(
        90, ge=0, description="First cutoff comes this many days after the earliest lead."
    )

    @field_validator("frequency")
    @classmethod
    def _known_offset(cls, value: str) -> str:
        try:
            offset = pd.tseries.frequencies.to_offset(value)
        except ValueError:
            raise ValueError(
                "not a pandas offset alias (expected e.g. MS for month starts, W-MON for Mondays)"
            ) from None
        if offset is None:
            raise ValueError("a cutoff frequency is required")
        return value


class SplitConfig(_Section):
    valid_cutoffs: int = Field(
        3,
        ge=1,
        description="Cutoffs in the validation and calibration slices (before the holdout).",
    )
    holdout_cutoffs: int = Field(3, ge=1, description="Newest cutoffs, which hold the holdout.")
    valid_lead_fraction: float = Field(
        0.15, gt=0, lt=1, description="Share of leads drawn into the early-stopping slice."
    )
    calibration_lead_fraction: float = Field(
        0.2, gt=0, lt=1, description="Share of leads drawn into the calibration slice."
    )
    holdout_lead_fraction: float = Field(
        0.2, gt=0, lt=1, description="Share of leads drawn into the holdout."
    )
    min_wins: int = Field(20, ge=5, description="Fewest wins each slice needs.")
    seed: int = Field(
        0, ge=0, lt=10**16, description="Salt of the lead draw (a hash of the lead id)."
    )
    order_by: str | None = Field(
        None,
        description="Shape flat only: a leads column that orders the rows in time (a date, or "
        "lead_id when the rows are in time order and generated_id numbers them); the holdout "
        "is then the newest rows, not a random draw.",
    )

    @model_validator(mode="after")
    def _fractions_leave_training_leads(self) -> SplitConfig:
        total = self.valid_lead_fraction + self.calibration_lead_fraction
        if total + self.holdout_lead_fraction >= 0.9:
            raise ValueError(
                "valid_lead_fraction + calibration_lead_fraction + holdout_lead_fraction must be "
                "below 0.9, to leave leads to train on"
            )
        return self


class FeatureConfig(_Section):
    windows_days: tuple[int, ...] = Field(
        (7, 30, 90), description="Activity count windows, in days."
    )
    decay_half_life_days: float = Field(14.0, gt=0, description="Half-life of engagement_decay.")
    recency_cap_days: int = Field(
        365, gt=0, description="How far back days_since_last_activity looks."
    )
    identifiers: tuple[str, ...] = Field(
        ("lead_id", "account_id", "deal_id"),
        description="Columns that are never features (case-insensitive).",
    )
    pii: tuple[str, ...] = Field(
        ("email", "first_name", "last_name", "phone"),
        description="Columns that are never features and never logged.",
    )
    exclude: tuple[str, ...] = Field((), description="Further columns that are never features.")
    known_at_creation: tuple[str, ...] | None = Field(
        None,
        description="Strict mode, for exports with neither timestamps nor field history: only "
        "these lead and account columns, which you vouch were known when the lead was created, "
        "become attribute features (null: every column not ruled out).",
    )

    @field_validator("windows_days")
    @classmethod
    def _positive_sorted(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value or any(w <= 0 for w in value):
            raise ValueError("windows_days must be a non-empty list of positive day counts")
        return tuple(sorted(set(value)))


class ModelConfig(_Section):
    learning_rate: float = Field(0.05, gt=0, le=1, description="LightGBM learning rate.")
    num_leaves: int = Field(31, ge=2, description="LightGBM leaves per tree.")
    min_child_samples: int = Field(100, ge=1, description="LightGBM fewest rows per leaf.")
    n_estimators: int = Field(
        2000, ge=1, description="Upper bound on trees; early stopping picks the number."
    )
    early_stopping_rounds: int = Field(
        100, ge=1, description="Rounds without a better validation log loss before stopping."
    )
    subsample: float = Field(0.8, gt=0, le=1, description="Share of rows sampled per tree.")
    colsample_bytree: float = Field(
        0.8, gt=0, le=1, description="Share of features sampled per tree."
    )
    reg_lambda: float = Field(1.0, ge=0, description="L2 regularisation.")
    calibration: Literal["auto", "isotonic", "sigmoid"] = Field(
        "auto", description="auto (the lower out-of-fold log loss), isotonic or sigmoid."
    )
    random_state: int = Field(0, description="Seed of LightGBM.")
    n_jobs: int = Field(2, ge=1, description="LightGBM threads.")


class ScoringConfig(_Section):
    grade_by: Literal["probability", "percentile"] = Field(
        "probability",
        description="probability: grades are minimum calibrated probabilities; percentile: "
        "cumulative shares of the best leads (A: 0.05 = the top 5%)",
    )
    grades: dict[str, float] = Field(
        default_factory=lambda: {"A": 0.30, "B": 0.12, "C": 0.04},
        description="Per grade, best first: a minimum probability or a top share; the rest get D.",
    )
    max_reasons: int = Field(3, ge=0, le=10, description="Reasons per lead.")
    chunk_size: int = Field(100_000, ge=1, description="Leads scored at a time (bounds memory).")
    workers: int | None = Field(
        None,
        ge=1,
        description="Processes scoring chunks at once, each on one core (Linux; elsewhere 1); "
        "None: one per core the job may use; 1: all in the job's own process.",
    )
    spill_dir: str | None = Field(
        None,
        description="Where the activity log is split while scoring (about 15 bytes per "
        "activity, removed afterwards); None: the system temp folder ($TMPDIR). Not a RAM disk.",
    )
    min_reason_impact: float = Field(0.05, ge=0, description="Log-odds a reason must add.")
    output: str = Field(
        "scores.db",
        description="Default --output: SQLAlchemy URL, SQLite file, or .parquet/.csv path; "
        "${ENV_VAR} is expanded (keep passwords there, not in the file).",
    )
    table: str = Field("lead_scores", description="Table of SQL targets (letters, digits, _).")
    history_table: str = Field(
        "lead_score_history", description="Append-only: every batch, for backtests."
    )
    changes_table: str = Field(
        "lead_score_changes",
        description="Append-only: per batch, the leads that crossed into or out of MQL or "
        "changed grade, old and new values (written with the scores, as one).",
    )
    lock_timeout_s: float = Field(
        600,
        ge=0,
        description="How long a run waits for another job writing the same target before it "
        "stops with exit code 5 (nothing written): to write it, and to read a file target.",
    )
    columns: dict[str, str] = Field(
        default_factory=dict,
        description="Rename output columns to a CRM's import names, e.g. {score: Lead_Score__c}.",
    )

    @field_validator("table", "history_table", "changes_table")
    @classmethod
    def _sql_name(cls, value: str) -> str:
        return _matching(SQL_NAME, value, "table name")

    @field_validator("columns")
    @classmethod
    def _known_output_columns(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value.values():
            _matching(COLUMN_NAME, name, "column name")
        unknown = [c for c in value if c not in SCORE_COLUMNS]
        if unknown:
            raise ValueError(
                f"unknown output column(s) {unknown}; expected some of {', '.join(SCORE_COLUMNS)}"
            )
        if len(set(value.values())) != len(value):
            raise ValueError("two output columns would get the same name")
        return value

    @model_validator(mode="before")
    @classmethod
    def _moved_to_agreement(cls, data: Any) -> Any:
        moved = {"mql_grades": "mql_grades", "mql_min_score": "mql_min_score",
                 "mql_capacity": "capacity_per_week"}  # fmt: skip
        for old, new in moved.items():
            if isinstance(data, dict) and old in data:
                raise ValueError(
                    f"scoring.{old} has moved to agreement.{new}: the MQL definition, the "
                    "sales capacity and the follow-up SLA are one agreement now"
                )
        return data

    @model_validator(mode="after")
    def _ordered_grades(self) -> ScoringConfig:
        thresholds = list(self.grades.values())
        if any(not 0 < t < 1 for t in thresholds):
            raise ValueError("grade thresholds are probabilities or shares strictly in (0, 1)")
        if self.grade_by == "probability" and thresholds != sorted(thresholds, reverse=True):
            raise ValueError("grades must be listed best first with falling thresholds")
        if self.grade_by == "percentile" and thresholds != sorted(thresholds):
            raise ValueError(
                "percentile grades are cumulative top shares, rising (A: 0.05, B: 0.2)"
            )
        if len({self.table, self.history_table, self.changes_table}) < 3:
            raise ValueError("table, history_table and changes_table must differ")
        return self


class LifecycleConfig(_Section):
    """Where a lead is: with marketing until sales accepts it (SQL), then with sales."""

    sql_from: Literal["opportunity", "column", "status_history", "none"] = Field(
        "opportunity",
        description="opportunity: a lead is SQL once its first deal is created; column: from "
        "the timestamp in `sql_column` of leads (HubSpot's SQL date); status_history: from the "
        "first change of `status_field` to one of `sql_values` in data.attribute_history "
        "(Salesforce lead status); none: no lifecycle, every open lead is marketing's.",
    )
    sql_column: str | None = Field(
        None, description="Leads column with the time the lead became SQL (sql_from: column)."
    )
    status_field: str | None = Field(
        None, description="Field of the attribute history holding the status (status_history)."
    )
    sql_values: tuple[str, ...] = Field(
        (), description="Status values that mean sales accepted the lead (status_history)."
    )
    opportunity_model: bool = Field(
        True,
        description="Score leads already with sales by a second model (learnt from every open "
        "lead, judged on theirs; never MQL); false: by the lead model, apart, never MQL.",
    )

    @model_validator(mode="after")
    def _needs(self) -> LifecycleConfig:
        if self.sql_from == "column" and not self.sql_column:
            raise ValueError("sql_from: column needs sql_column (the leads column with the date)")
        if self.sql_from == "status_history" and not (self.status_field and self.sql_values):
            raise ValueError("sql_from: status_history needs status_field and sql_values")
        return self


class AgreementConfig(_Section):
    """What sales and marketing sign: which leads are handed over, how many, how fast."""

    name: str = Field("default", description="A label for this version of the agreement.")
    mql_grades: tuple[str, ...] = Field(("A", "B"), description="Grades that are MQLs.")
    mql_min_score: int | None = Field(None, ge=1, le=99, description="A score this high is MQL.")
    capacity_per_week: int | None = Field(
        None,
        ge=0,
        description="New MQL hand-offs sales can take in any 7 days (highest probability first; "
        "leads already handed over stay MQL while they qualify); None: no cap.",
    )
    sla_days: int = Field(
        7, ge=1, description="Days sales has to accept (SQL) a hand-off before it counts as missed."
    )
    report_thresholds: tuple[int, ...] = Field(
        (3, 5, 10, 20, 30), description="Minimum scores the agreement table compares."
    )
    report_capacities: tuple[int, ...] = Field(
        (25, 50, 100, 200), description="Weekly capacities the agreement table compares."
    )


class EvaluationConfig(_Section):
    segments: tuple[str, ...] | None = Field(
        None,
        description="Lead or account columns to report metrics by; None: those of source, "
        "industry, region and country the data have.",
    )
    bootstrap: int = Field(200, ge=20, description="Bootstrap draws for the 95% intervals.")


class GateConfig(_Section):
    """When `leadscore retrain` may replace the champion with its challenger."""

    auc_tolerance: float = Field(
        0.005, ge=0, le=0.5, description="Challenger ROC AUC may be this much below the champion's."
    )
    max_ece: float = Field(0.05, gt=0, le=1, description="Challenger calibration error ceiling.")
    min_holdout: int = Field(300, ge=1, description="Fewest holdout examples to decide on.")
    min_holdout_wins: int = Field(20, ge=1, description="Fewest holdout wins to decide on.")
    require_clean_audit: bool = Field(
        True, description="No column the leakage audit flagged may remain a feature."
    )


class MonitorConfig(_Section):
    """What `leadscore monitor` alerts on (exit code 4)."""

    psi_warn: float = Field(0.1, gt=0, description="PSI from which a shift is reported.")
    psi_alert: float = Field(0.25, gt=0, description="PSI of the score or a feature that alerts.")
    min_gain_share: float = Field(
        0.01, ge=0, le=1, description="Features with less of the model's gain only warn."
    )
    sample: int = Field(50_000, ge=100, description="Open leads sampled to measure drift.")
    backtest_min_auc: float = Field(0.6, ge=0, le=1, description="Realized AUC below alerts.")
    backtest_min_examples: int = Field(200, ge=1, description="Fewer matured leads: no verdict.")
    backtest_batches: int = Field(3, ge=1, description="Newest matured history batches checked.")

    @model_validator(mode="after")
    def _ordered(self) -> MonitorConfig:
        if self.psi_warn > self.psi_alert:
            raise ValueError("psi_warn must not exceed psi_alert")
        return self


class MlflowConfig(_Section):
    experiment: str = Field("leadscore", description="MLflow experiment name.")
    registered_model: str = Field("lead-scoring", description="Registered model name.")

    @field_validator("experiment", "registered_model")
    @classmethod
    def _mlflow_name(cls, value: str) -> str:
        return _matching(MLFLOW_NAME, value, "MLflow name")


class SparkConfig(_Section):
    """`--engine spark`: where Spark runs and how leads are grouped for the pandas builders."""

    master: str | None = Field(
        None,
        description="Spark master URL; None: spark-submit's or $SPARK_MASTER, else local[*].",
    )
    bucket_size: int = Field(
        20_000, ge=1, description="Leads per group handed to the pandas builders on an executor."
    )
    driver_memory: str = Field(
        "4g",
        description="spark.driver.memory unless spark-submit set it (the results are "
        "collected to the driver for grading and the write).",
    )


class Config(_Section):
    data: DataConfig = DataConfig()
    validation: ValidationConfig = ValidationConfig()
    audit: AuditConfig = AuditConfig()
    snapshots: SnapshotConfig = SnapshotConfig()
    split: SplitConfig = SplitConfig()
    features: FeatureConfig = FeatureConfig()
    model: ModelConfig = ModelConfig()
    scoring: ScoringConfig = ScoringConfig()
    lifecycle: LifecycleConfig = LifecycleConfig()
    agreement: AgreementConfig = AgreementConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    gate: GateConfig = GateConfig()
    monitor: MonitorConfig = MonitorConfig()
    spark: SparkConfig = SparkConfig()
    mlflow: MlflowConfig = MlflowConfig()

    @model_validator(mode="after")
    def _mql_grades_exist(self) -> Config:
        known = {*self.scoring.grades, "D"}
        unknown = [g for g in self.agreement.mql_grades if g not in known]
        if unknown:
            raise ValueError(f"agreement.mql_grades names grade(s) {unknown} not in scoring.grades")
        return self

    @model_validator(mode="after")
    def _ordering_needs_flat(self) -> Config:
        if self.split.order_by is not None and self.data.shape != "flat":
            raise ValueError(
                "split.order_by orders the rows of shape flat; time-stamped shapes are split by "
                "their cutoffs already"
            )
        return self


def _apply_override(raw: dict[str, Any], assignment: str) -> None:
    key, sep, text = assignment.partition("=")
    if not sep or not key.strip():
        raise InputError(f"--set {assignment!r}: expected KEY=VALUE, e.g. model.learning_rate=0.05")
    parts = key.strip().split(".")
    node = raw
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise InputError(f"--set {assignment!r}: {part!r} is a value, not a section")
        node = child
    try:
        node[parts[-1]] = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError as exc:
        raise InputError(f"--set {assignment!r}: the value is not valid YAML: {exc}") from None


def _describe_error(error: ValidationError, source: str, overrides: tuple[str, ...]) -> str:
    lines = [f"{source}: invalid configuration"]
    for item in error.errors():
        key = ".".join(str(p) for p in item["loc"])
        lines.extend(_error_lines(item, key))
        given = [o for o in overrides if _same_key(o.partition("=")[0].strip(), key)]
        if given:
            lines[-1] += f" [from --set {given[-1]}]"
    return redact_text("\n".join(lines))  # a URL given in the wrong place keeps its password


def _same_key(a: str, b: str) -> bool:
    """Whether one dotted key is the other or holds it (an override names a section or value)."""
    return a == b or a.startswith(b + ".") or b.startswith(a + ".")


def _error_lines(item: Any, key: str) -> list[str]:
    lines: list[str] = []
    if item["type"] == "extra_forbidden":
        section = _section_for(item["loc"][:-1])
        known = ", ".join(section.model_fields) if section else ""
        lines.append(f"  {key}: unknown key (expected one of: {known})")
    else:
        hint = ""
        if isinstance(item.get("input"), bool):
            hint = (
                "; YAML reads unquoted yes, no, on, off, true and false as booleans: put the "
                "value in quotes, e.g. 'yes'"
            )
        lines.append(f"  {key}: {item['msg']} (got {item.get('input')!r}){hint}")
    return lines


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The config section a field holds: itself, or inside `X | None` or `tuple[X, ...]`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _section_for(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    model: type[BaseModel] = Config
    for part in loc:
        if isinstance(part, int):  # an item of a list of sections (e.g. data.lookups.0)
            continue
        field = model.model_fields.get(str(part))
        if field is None and isinstance(model, type):  # a key of a dict of sections
            continue
        found = _model_in(field.annotation) if field else None
        if found is None:
            return None
        model = found
    return model


def load_config(path: str | Path | None, overrides: tuple[str, ...] = ()) -> Config:
    """Load a YAML config (or the defaults when path is None) and apply KEY=VALUE overrides."""
    source = str(path) if path is not None else "default config"
    raw: dict[str, Any] = {}
    if path is not None:
        file = Path(path)
        if not file.is_file():
            raise InputError(f"config file {file} does not exist")
        try:
            loaded = yaml.safe_load(file.read_text(encoding="utf-8"))
        except UnicodeDecodeError as exc:
            raise InputError(
                f"{file}: not UTF-8 text (byte {exc.object[exc.start]:#04x} at position "
                f"{exc.start} is not valid UTF-8); save the config as UTF-8"
            ) from None
        except OSError as exc:
            raise InputError(f"{file}: cannot be read: {exc.strerror}") from None
        except yaml.YAMLError as exc:
            raise InputError(f"{file}: not valid YAML: {exc}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise InputError(f"{file}: expected a mapping of sections at the top level")
        raw = loaded or {}
    for assignment in overrides:
        _apply_override(raw, assignment)
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        raise InputError(_describe_error(exc, source, overrides)) from None


def config_as_dict(config: Config) -> dict[str, Any]:
    """The fully resolved config as plain data, for logging, hashing and artifacts: passwords
    written into URLs are hidden (`${ENV_VAR}` references stay as written)."""
    return redacted(config.model_dump(mode="json"))
