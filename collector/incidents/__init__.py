"""Incident candidates: events become signals (signals.py), signals are grouped, scored and
escalated into candidates (engine.py), the DSL triages them (triage.py) and reads them
(queries.py). Rules come from the policy in `rules/` (config.py)."""
