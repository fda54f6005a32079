"""The NGSI-LD query languages: one AST, one Python evaluator, one MongoDB compiler."""
