"""Porting parameters between models of any two frameworks."""

from ..dataflow import DenseInput
from .flatten import DataflowError, dense_facts
from .layers import FAMILIES
from .port import port
from .report import PortError, PortReport, PortRow

__all__ = ["FAMILIES", "DataflowError", "DenseInput", "PortError", "PortReport", "PortRow", "dense_facts", "port"]
