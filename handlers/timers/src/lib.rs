//! The timers Lambda: on a schedule, dials due calls at the paced rate, retries busy and
//! unanswered calls, and reaps calls whose end was never reported. See DESIGN.md section 5;
//! the dispatcher lands with the timers issue.
