"""The NGSI-LD query languages: one AST, one Python evaluator, one MongoDB compiler.

* ``ast``        frozen AST nodes (q, type expressions, scopeQ, geoQ)
* ``parser``     ``parse_q``, ``parse_type_expr``, ``parse_scope_q``, ``parse_geoq`` (lark LALR, cached)
* ``evaluator``  ``match_q``, ``match_types``, ``match_scope``, ``match_geo``, ``match_entity``: the
                 reference semantics (subscriptions, embedded store, post-filter)
* ``mongo``      ``compile_entity_query`` -> ``(filter, exact)`` for MongoDB and FerretDB
* ``model``      ``EntityQuery``, what a store needs to answer a query
"""
