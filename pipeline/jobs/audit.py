"""The audit job: load -> as-of -> snapshots -> features -> leakage audit (what `train` would
drop, and why), without training."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from leadscore.pipeline.catalog import Catalog
from leadscore.pipeline.steps.examples import labelled_examples
from leadscore.pipeline.steps.leakage import AuditResult, run_audit


@dataclass(frozen=True)
class AuditReport:
    result: AuditResult
    attributes: list[str]  # the untimed columns examined


def audit(catalog: Catalog, as_of: pd.Timestamp | None) -> AuditReport:
    """The leakage audit on the examples `train` would learn from."""
    data = catalog.load_as_of(as_of, activities="whole")
    examples = labelled_examples(data, catalog)
    with catalog.steps.step("Auditing attributes for leakage"):
        result = run_audit(examples, data.tables, catalog.config)
    return AuditReport(result, examples.attributes)
