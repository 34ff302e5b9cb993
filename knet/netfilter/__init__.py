"""netfilter: the iptables rules IR (rules.py), the per-node evaluator (engine.py), conntrack
(conntrack.py) and caller-supplied ipsets (ipset.py). Pure, synchronous code."""

from knet.netfilter.conntrack import Conntrack, CtEntry
from knet.netfilter.engine import Netfilter, Outcome, Outcomes, Result, Step
from knet.netfilter.ipset import IPSet
from knet.netfilter.rules import (Chain, Rule, RuleSet, Table, parse_rules, render_restore,
                                  render_save)

__all__ = ["Chain", "Conntrack", "CtEntry", "IPSet", "Netfilter", "Outcome", "Outcomes",
           "Result", "Rule", "RuleSet", "Step", "Table", "parse_rules", "render_restore",
           "render_save"]
