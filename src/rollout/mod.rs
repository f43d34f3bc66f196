//! Guarded rollouts (issue 18): a distribution's staging share ramps up in steps, and each step compares
//! staging against primary over the same window and rolls staging back when it does measurably worse.
//!
//! This module is the domain side of that feature, and so is pure: no I/O, no clock, no locks. So far it
//! holds [`guard`], the statistics that turn both arms' counts into a verdict (pass, need more traffic, or a
//! breach with the reason an operator reads). The rollout itself (steps with a share and a bake time, the
//! state machine that advances, rolls back, pauses and finishes, and the store and API around it) comes
//! later, on top of these counts and verdicts.

pub mod guard;
