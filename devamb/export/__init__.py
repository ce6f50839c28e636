"""`devamb export`: a profile as an Envoy v3 static bootstrap and the Kubernetes objects that run
Envoy as the app's ambassador sidecar.

The exporter reads the profile from disk with the same validation as `devamb check`; it never
starts the engine. What does not map exactly is a line of the mapping report, at the profile's
FILE:LINE:COL. Output is deterministic, and no value read from the environment (`${VAR}`) is ever
written: header values name the variable for Envoy to read (`%ENVIRONMENT(VAR)%`), and the
Kubernetes objects fill that variable from a Secret.
"""
