"""Operations: the guide's deployment checklist (`check`), live Prometheus metrics during a run
(`LiveExporter`), and the monitoring files built from an SLA policy (alert rules, Grafana dashboard).

Entry points for the CLI: `harness.ops.check.main_check`, `harness.ops.alerts.main_alerts`,
`harness.ops.exporter.LiveExporter`. Nothing here runs at import time.
"""
