"""Manifests: YAML in → validated, defaulted model objects + cluster config out (like the
Kubernetes API server); model objects → manifest dicts (``knet get -o yaml|json``).

Public API:

- ``read(paths, stdin=None) -> Input``: ``-f`` paths (files, directories of ``*.yaml|*.yml``
  sorted, ``-`` for stdin). Multi-document YAML and ``kind: List`` / ``*List``. Raises
  ``ManifestError`` listing every Problem (``file:line:col: Kind ns/name: field: message``);
  nothing is applied then.
- ``read_text(text, filename="<stdin>") -> Input``; ``read_texts([(filename, text), …])``.
- ``Input(objects, config, warnings)``: model objects (kind's nodes first, then input
  order; ``metadata.creation_index`` is that order), a ``ClusterConfig``, and warnings
  (skipped kinds such as CRDs, ignored settings) for the CLI to print on stderr.
- ``to_manifest(obj) -> dict``: a valid manifest (apiVersion, kind, metadata, spec, status)
  that ``read`` accepts again; ``to_yaml(manifest | [manifests])`` dumps it (quoting ``y``/``n``
  which PyYAML would leave plain and kubectl would read as booleans).
- ``default_nodes(config) -> list[Node]``: knet's default shape (control-plane + 2 workers,
  named and labelled as kind does); ``kind_nodes(cluster_name, roles)``.
- ``pod_from_template(template, namespace, name, …) -> Pod``: how workload controllers build
  pods, through the same validation/defaulting as a Pod manifest.
- ``parse_duration(text)``: Go duration strings from configuration files.

Allocation (ClusterIPs, NodePorts, LoadBalancer IPs, pod IPs, node addresses) is the control
plane's; only user-given values are checked here. docs/topology.md lists every honoured
configuration field.
"""

from knet.manifests.config import parse_duration
from knet.manifests.nodes import default_nodes, kind_nodes
from knet.manifests.read import Input, read, read_text, read_texts
from knet.manifests.render import to_manifest, to_yaml
from knet.manifests.template import pod_from_template

__all__ = ["Input", "default_nodes", "kind_nodes", "parse_duration", "pod_from_template",
           "read", "read_text", "read_texts", "to_manifest", "to_yaml"]
