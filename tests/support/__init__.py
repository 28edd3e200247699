"""Real parts for the tests: network namespaces, Postfix, the gateway, DNS, clamd."""
