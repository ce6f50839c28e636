"""What Envoy calls a cluster: endpoints, DNS, health checks, outlier ejection, balancing, the
hash ring, and whether an address is reachable."""
