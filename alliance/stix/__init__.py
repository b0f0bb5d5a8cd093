"""Pure STIX 2.1 code: validation, fast checks, patterns, observables, TLP and markings, ATT&CK
names. No Flask and no database: limits are passed in."""
