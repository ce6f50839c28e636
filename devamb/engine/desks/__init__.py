"""The desks: each implements one part of EngineControl over the engine's shared context
(inspection, faults, scenarios, recording, services). A desk never imports the lifecycle or
the Engine that composes them."""
