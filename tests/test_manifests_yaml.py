"""YAML traps and located errors (file:line:col of the exact field)."""

from __future__ import annotations

import pytest

from knet.errors import ManifestError, Problem
from knet.manifests import read_text


def problems(text: str) -> list[Problem]:
    with pytest.raises(ManifestError) as e:
        read_text(text, "t.yaml")
    return e.value.problems


POD = """\
apiVersion: v1
kind: Pod
metadata:
  name: p
  labels:
    enabled: {label}
spec:
  containers:
    - name: c
      image: busybox
      env:
        - name: FLAG
          value: {env}
"""


def test_duplicate_mapping_key_is_located_error():
    (p,) = problems("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n  name: b\n")
    assert (p.file, p.line, p.col) == ("t.yaml", 5, 3)
    assert 'duplicate key "name"' in p.message and "line 4" in p.message


@pytest.mark.parametrize("word", ["on", "yes", "off", "no", "true", "y", "n", "Y", "N"])
def test_yaml11_boolean_label_value(word):
    (p,) = problems(POD.format(label=word, env='"x"'))
    assert p.message == "expected string, got boolean (quote the value)"
    assert (p.line, p.col, p.field) == (6, 14, "metadata.labels[enabled]")
    assert (p.kind, p.name) == ("Pod", "default/p")
    assert str(p).startswith("t.yaml:6:14: Pod default/p: metadata.labels[enabled]: expected")


def test_quoted_boolean_is_fine():
    obj = read_text(POD.format(label='"yes"', env='"y"')).objects[0]
    assert obj.metadata.labels == {"enabled": "yes"}
    assert obj.spec.containers[0].env[0]["value"] == "y"


def test_octal_env_value():
    (p,) = problems(POD.format(label='"x"', env="010"))
    assert p.field == "spec.containers[0].env[0].value"
    assert p.message == "expected string, got integer 8 from 010 (YAML 1.1 octal) (quote the value)"
    assert (p.line, p.col) == (13, 18)


def test_sexagesimal_configmap_value():
    (p,) = problems("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata:\n  t: 1:30\n")
    assert p.field == "data[t]" and "base 60" in p.message and "90" in p.message


def test_integer_annotation_value():
    (p,) = problems("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n  annotations:\n"
                    "    replicas: 3\n")
    assert p.message == "expected string, got integer (quote the value)"


def test_boolean_name():
    (p,) = problems("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: yes\n")
    assert p.field == "metadata.name" and "boolean" in p.message


def test_string_port_rejected():
    (p,) = problems("apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n"
                    "  ports:\n    - port: \"80\"\n")
    assert p.field == "spec.ports[0].port"
    assert p.message == 'expected integer, got string "80"'
    assert (p.line, p.col) == (6, 13)


def test_string_replicas_rejected():
    text = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: d}
spec:
  replicas: "3"
  selector: {matchLabels: {app: d}}
  template:
    metadata: {labels: {app: d}}
    spec: {containers: [{name: c, image: i}]}
"""
    (p,) = problems(text)
    assert (p.field, p.line, p.col) == ("spec.replicas", 5, 13)
    assert p.message == 'expected integer, got string "3"'


def test_syntax_error_located():
    (p,) = problems("apiVersion: v1\nkind: Pod\nmetadata:\n  name: [a\n")
    assert p.file == "t.yaml" and p.line == 5 and p.message.startswith("YAML syntax error")


def test_tab_indentation_syntax_error():
    (p,) = problems("apiVersion: v1\nkind: Pod\n\tmetadata: {}\n")
    assert p.line == 3 and "YAML syntax error" in p.message


def test_every_problem_is_reported_and_nothing_applied():
    text = POD.format(label="on", env="010") + "---\n" + "apiVersion: v1\nkind: Service\n" \
        "metadata: {name: Bad_Name}\nspec: {ports: [{port: 0}]}\n"
    ps = problems(text)
    fields = [p.field for p in ps]
    assert fields == ["metadata.labels[enabled]", "spec.containers[0].env[0].value",
                      "metadata.name", "spec.ports[0].port"]
    assert [p.line for p in ps] == sorted(p.line for p in ps)


def test_timestamps_stay_strings():
    obj = read_text("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n"
                    "  creationTimestamp: 2025-01-10T09:00:00Z\n").objects[0]
    assert obj.metadata.creation_timestamp == "2025-01-10T09:00:00Z"


def test_anchors_and_merge_keys():
    text = """\
apiVersion: v1
kind: Service
metadata: {name: s}
spec:
  ports:
    - &p {name: a, port: 80}
    - <<: *p
      name: b
      port: 81
"""
    svc = read_text(text).objects[0]
    assert [(p.name, p.port) for p in svc.spec.ports] == [("a", 80), ("b", 81)]


def test_unknown_field_strict_like_kubectl():
    (p,) = problems("apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n"
                    "  ports:\n    - port: 80\n      targetport: 8080\n")
    assert p.field == "spec.ports[0].targetport" and p.line == 7 and p.col == 7
    assert p.message == 'unknown field "spec.ports[0].targetport"'


def test_missing_kind_and_non_mapping_document():
    ps = problems("apiVersion: v1\nmetadata: {name: x}\n---\n- a\n- b\n")
    assert ps[0].message == "Object 'Kind' is missing" and ps[0].line == 1
    assert "expected a Kubernetes object" in ps[1].message and ps[1].line == 4
