"""Porting parameters between models of any two frameworks."""

from .port import PortError, PortReport, PortRow, port

__all__ = ["PortError", "PortReport", "PortRow", "port"]
