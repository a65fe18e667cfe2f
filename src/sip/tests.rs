//! Endpoint scenarios on simulated time.
