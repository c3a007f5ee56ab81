//! lockstock domain: entities, validation rules, errors and ports.
