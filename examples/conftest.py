"""Example suites for knet's pytest plugin (installed with knet: nothing to register here).

Every example is an ordinary async test: ``@pytest.mark.knet(topology=…)`` starts a cluster
on virtual time and hands it to the test as ``knet_cluster``. Topology paths are relative to
the test file or to the rootdir (this repository's root).
"""
