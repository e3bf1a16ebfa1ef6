"""The fabric: packets and flits, credit-based VC routers, routing functions, arbiters, collectives."""
