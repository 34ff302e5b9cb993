"""``knet convert ingress-to-gateway``: the mapping, what is listed as not expressible, and
``--check`` catching the differences a real migration has."""

from __future__ import annotations

import yaml

from knet.cli import main
from knet.manifests import read_text

TOPO = "topologies/ingress-migration.yaml"


def test_conversion_is_valid_and_maps_the_annotations(capsys):
    assert main(["convert", "ingress-to-gateway", "-f", TOPO]) == 0
    out, err = capsys.readouterr()
    assert "limit-rps has no Gateway API equivalent" in err and "# not converted:" in out
    read_text(out, "converted.yaml")  # the API server's validation accepts every object
    objs = {(o["kind"], o["metadata"]["name"]): o for o in yaml.safe_load_all(out) if o}
    gw = objs[("Gateway", "ingress-nginx")]["spec"]
    assert [ls["name"] for ls in gw["listeners"]] == ["http", "https-shop-test"]
    assert gw["listeners"][1]["tls"]["certificateRefs"] == [
        {"group": "", "kind": "Secret", "name": "shop-tls"}]
    http = objs[("HTTPRoute", "shop-shop-test")]["spec"]["rules"]
    assert http == [{"filters": [{"type": "RequestRedirect", "requestRedirect": {
        "scheme": "https", "statusCode": 308}}]}]  # ssl-redirect
    https = objs[("HTTPRoute", "shop-shop-test-https")]["spec"]
    assert https["parentRefs"] == [{"name": "ingress-nginx", "sectionName": "https-shop-test"}]
    app_root, store, api = https["rules"]
    assert app_root["filters"][0]["requestRedirect"]["path"]["replaceFullPath"] == "/store"
    assert api["backendRefs"] == [{"name": "api", "port": 8080, "weight": 80},
                                  {"name": "api-v2", "port": 8080, "weight": 20}]  # canary
    legacy = objs[("HTTPRoute", "legacy-legacy-test")]["spec"]["rules"][0]
    assert legacy["matches"] == [{"path": {"type": "PathPrefix", "value": "/old"}}]
    assert legacy["filters"] == [{"type": "URLRewrite", "urlRewrite": {"path": {
        "type": "ReplacePrefixMatch", "replacePrefixMatch": "/"}}}]


def test_check_reports_each_difference_and_why(capsys, tmp_path):
    assert main(["convert", "ingress-to-gateway", "-f", TOPO, "--check"]) == 1
    out = capsys.readouterr().out
    assert ("http://legacy.test/OLD: status: ingress 200, gateway 404: ingress-nginx regex "
            "locations match case-insensitively") in out
    assert ("http://shop.test/store/: location: ingress 'https://shop.test/store', gateway "
            "'https://shop.test/store/': ingress-nginx's ssl-redirect drops a trailing slash") in out
    assert out.rstrip().endswith("requests replayed, 3 differ")
    reqs = tmp_path / "requests.txt"
    reqs.write_text("# clean requests\nhttps://shop.test/store/a?x=1\nhttps://shop.test/\n"
                    "http://legacy.test/old/x\nhttp://nobody.test/\n")
    assert main(["convert", "ingress-to-gateway", "-f", TOPO, "--check", "--requests",
                 str(reqs)]) == 0
    assert "4 requests replayed, 0 differ" in capsys.readouterr().out
