"""Issue 13 items 11–13 and issue 12 items 13, 15 (chart dirs): what the loader refuses and how,
the skipped-kinds summary, and the libyaml-based loader keeping every location."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from knet.cli import main
from knet.errors import ManifestError
from knet.manifests import read, read_text
from knet.manifests.loader import load_documents
from knet.manifests.objects import KINDS
from knet.manifests.skipped import SKIPPED

ROOT = Path(__file__).resolve().parents[1]

DEPLOY = """apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: REPLICAS
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: GRACE
      containers: [{name: c, image: nginx}]
"""


def problems(text: str) -> list[str]:
    with pytest.raises(ManifestError) as e:
        read_text(text, "t.yaml")
    return [str(p) for p in e.value.problems]


def laughs(levels: int = 9, width: int = 9, indent: str = "") -> str:
    lines = [f"{indent}a0: &a0 [lol]"]
    for i in range(1, levels + 1):
        refs = ", ".join([f"*a{i - 1}"] * width)
        lines.append(f"{indent}a{i}: &a{i} [{refs}]")
    return "\n".join(lines) + "\n"


# --- 13.12 alias bombs -------------------------------------------------------------------------

def test_alias_bomb_refused_at_once_anywhere() -> None:
    t = time.monotonic()
    top = problems("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n" + laughs())
    in_template = problems(DEPLOY.replace("REPLICAS", "1").replace("GRACE", "1").replace(
        "      containers:", "      x:\n" + laughs(indent="        ") + "      containers:"))
    assert time.monotonic() - t < 1.0
    assert top == ["t.yaml:7:5: document contains excessive aliasing"]  # where the ratio tips
    assert in_template == ["t.yaml:15:13: document contains excessive aliasing"]


def test_ordinary_anchors_and_merge_keys_still_work() -> None:
    text = """apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: c, labels: &l {app: web}}
  data: &d {a: "1", b: "2"}
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: d, labels: *l}
  data:
    <<: *d
    c: "3"
"""
    objs = [o for o in read_text(text).objects if o.kind == "ConfigMap"]
    assert [dict(o.data) for o in objs] == [{"a": "1", "b": "2"}, {"a": "1", "b": "2", "c": "3"}]
    assert objs[1].metadata.labels == {"app": "web"}


def test_recursive_alias_and_nesting_and_size() -> None:
    assert load_documents("a: &a [*a]\n", "f").problems[0].message == "anchor value contains itself"
    deep = load_documents("a: " + "[" * 101 + "]" * 101 + "\n", "f").problems
    assert [(p.message, p.line) for p in deep] == [("nesting deeper than 100 levels", 1)]
    assert not load_documents("a: " + "[" * 90 + "]" * 90 + "\n", "f").problems
    libyaml = load_documents("a: " + "[" * 5000 + "\n", "f").problems
    assert "exceeded maximum nesting depth" in libyaml[0].message
    big = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {a: '" + "x" * (3 << 20) + "'}\n"
    assert [p.message for p in load_documents(big, "f").problems] == [
        "Request entity too large: limit is 3145728"]


# --- 13.11 tags and characters -----------------------------------------------------------------

@pytest.mark.parametrize("text,message", [
    ("a: b\x00c\n", "YAML syntax error: character U+0000 is not allowed (control characters are "
                    "not allowed)"),
    ("é: x\nb: \x01\n", "YAML syntax error: character U+0001 is not allowed (control characters "
                        "are not allowed)"),
    ("a: !!omap [{a: 1}]\n", "unsupported YAML tag !!omap"),
    ("a: !!set {x}\n", "unsupported YAML tag !!set"),
    ("a: !!python/object:os.system x\n", "unsupported YAML tag !!python/object:os.system"),
    ("a: !foo x\n", "unsupported YAML tag !foo"),
    ("a: !!int abc\n", "cannot decode !!int `abc`"),
    ("a: !!bool maybe\n", "cannot decode !!bool `maybe`"),
])
def test_bad_tags_and_characters_are_located(text: str, message: str) -> None:
    (p,) = load_documents(text, "f").problems
    assert p.message == message and p.line in (1, 2) and p.col > 1


def test_core_schema_tags_are_read() -> None:
    (d,) = load_documents("a: !!float 1\nb: !!binary aGVsbG8=\nc: !!str 10\nd: !!timestamp "
                          "2001-01-01\n", "f").documents
    assert dict(d.value) == {"a": 1.0, "b": "hello", "c": "10", "d": "2001-01-01"}


def test_locations_are_kept_by_the_libyaml_loader() -> None:
    (d,) = load_documents("a: \"éé\"\nb: [x, \"ü\", z]\nc:\n  - {k: v}\n", "f").documents
    v = d.value
    assert v.val_locs == {"a": (1, 4), "b": (2, 4), "c": (4, 3)} and v.loc == (1, 1)
    assert v["b"].locs == [(2, 5), (2, 8), (2, 13)] and v["b"].raw == ["x", None, "z"]
    assert v["c"][0].key_locs == {"k": (4, 6)}


# --- 13.13 integer ranges and the pod budget ---------------------------------------------------

def test_int32_and_int64_fields_range_checked_like_the_api_server() -> None:
    ok = DEPLOY.replace("REPLICAS", "2147483647").replace("GRACE", "9223372036854775807")
    with pytest.raises(ManifestError) as e:  # valid ints, but far too many pods for knet
        read_text(ok, "t.yaml")
    assert [str(p) for p in e.value.problems] == [
        "t.yaml:5:13: Deployment default/web: spec.replicas: Forbidden: the input asks for "
        "2147483647 pods or more; knet runs at most 150000 (Kubernetes' documented limit for one "
        "cluster)"]
    assert problems(DEPLOY.replace("REPLICAS", "2147483648").replace("GRACE", "9223372036854775808")) == [
        "t.yaml:5:13: Deployment default/web: spec.replicas: json: cannot unmarshal number "
        "2147483648 into Go struct field DeploymentSpec.spec.replicas of type int32",
        "t.yaml:10:38: Deployment default/web: spec.template.spec.terminationGracePeriodSeconds: "
        "json: cannot unmarshal number 9223372036854775808 into Go struct field "
        "PodSpec.spec.template.spec.terminationGracePeriodSeconds of type int64"]


def test_int32_message_names_the_go_struct_for_ports_and_probes() -> None:
    svc = ("apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  selector: {a: b}\n"
           "  ports: [{port: 4294967296}]\n")
    assert any("Go struct field ServicePort.spec.ports.port of type int32" in p
               for p in problems(svc))
    pod = ("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: c\n"
           "    image: i\n    ports: [{containerPort: 4294967296}]\n"
           "    readinessProbe: {tcpSocket: {port: 80}, periodSeconds: 2147483648}\n")
    msgs = problems(pod)
    assert any("Go struct field ContainerPort.spec.containers.ports.containerPort of type "
               "int32" in m for m in msgs), msgs
    assert any("Go struct field Probe.spec.containers.readinessProbe.periodSeconds of type "
               "int32" in m for m in msgs), msgs


def test_pod_budget_counts_every_workload(capsys) -> None:
    text = DEPLOY.replace("REPLICAS", "100000").replace("GRACE", "1") + "---\n" + DEPLOY.replace(
        "REPLICAS", "50001").replace("GRACE", "1").replace("name: web}", "name: web2}", 1)
    t = time.monotonic()
    assert main(["validate", "-f", str(_write(text))]) == 1
    assert time.monotonic() - t < 5
    err = capsys.readouterr().err
    assert "Deployment default/web2: spec.replicas: Forbidden: the input asks for 150001 pods" in err


def _write(text: str) -> Path:
    import tempfile

    f = Path(tempfile.mkdtemp()) / "w.yaml"
    f.write_text(text)
    return f


# --- 12.13 skipped kinds -----------------------------------------------------------------------

SKIPPY = """apiVersion: autoscaling.k8s.io/v1
kind: VerticalPodAutoscaler
metadata: {name: v}
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {name: c}
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {name: d}
---
apiVersion: example.com/v1
kind: Widget
metadata: {name: w}
"""


def test_skipped_kinds_warn_each_and_end_with_one_summary_line() -> None:
    inp = read_text(SKIPPY, "s.yaml")
    assert inp.warnings == [
        "s.yaml:1:1: skipped autoscaling.k8s.io/v1 VerticalPodAutoscaler v: knet does not model "
        "this kind (no resource recommendations: requests stay as written)",
        "s.yaml:5:1: skipped admissionregistration.k8s.io/v1 ValidatingWebhookConfiguration c: knet "
        "does not model this kind (no admission webhook runs)",
        "s.yaml:9:1: skipped admissionregistration.k8s.io/v1 ValidatingWebhookConfiguration d: knet "
        "does not model this kind (no admission webhook runs)",
        "s.yaml:13:1: skipped example.com/v1 Widget w: knet does not model this kind (not a kind "
        "knet knows)",
        "skipped 4 objects of 3 kinds knet does not model: ValidatingWebhookConfiguration (2), "
        "VerticalPodAutoscaler, Widget; see docs/deviations.md",
    ]
    assert read_text("apiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n").warnings == []


def test_deviations_page_lists_exactly_the_skipped_kinds() -> None:
    page = (ROOT / "docs" / "deviations.md").read_text()
    section = page.split("### Kinds knet skips", 1)[1].split("\n## ", 1)[0]
    rows = dict(re.findall(r"^\| `(\w+)` \| (.+) \|$", section, re.M))
    expected = {k: v for k, v in SKIPPED.items() if k not in KINDS}
    assert rows == expected


# --- 12.15 Helm chart directories --------------------------------------------------------------

def test_chart_directory_says_render_it_first(tmp_path, capsys) -> None:
    chart = tmp_path / "web"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: web\nversion: 0.1.0\n")
    (chart / "values.yaml").write_text("replicaCount: 1\n")
    with pytest.raises(ManifestError) as e:
        read([str(chart)])
    assert [str(p) for p in e.value.problems] == [
        f"{chart}:0:0: a Helm chart directory (Chart.yaml), not manifests: render it first: "
        f"helm template NAME {chart} | knet … -f -"]
    assert main(["get", "pods", "-f", str(chart)]) == 1
    assert "helm template NAME" in capsys.readouterr().err
