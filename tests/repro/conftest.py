"""The reproduction tier (slow-marked tests that train Table 2's rows) lives here."""
