"""Storage back-ends behind one contract (:mod:`queuey.storage.base`)."""
