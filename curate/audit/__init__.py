"""Audits: label issues (cleanlab), bias and balance, the audit report, and the FiftyOne review loop."""

from .bias import bias_report, class_balance, class_weights, rebalance
from .report import AuditResult, audit, write_audit

__all__ = ["audit", "write_audit", "AuditResult", "bias_report", "class_balance", "class_weights", "rebalance"]
