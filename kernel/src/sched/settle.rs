//! Waiting for a reading to settle (the selftests: threads of a dead instance being
//! reaped, a restarted one's starting).

use super::sleep_ms;

/// `measure()` once it has stopped changing: five readings 20 ms apart agree (the threads
/// of the last dead instance have ended and been reaped, the new instance's have started).
/// At most about 2 s.
pub fn settled<T: PartialEq>(measure: impl Fn() -> T) -> T {
    let mut last = measure();
    let mut same = 0;
    for _ in 0..100 {
        sleep_ms(20);
        let now = measure();
        same = if now == last { same + 1 } else { 0 };
        last = now;
        if same == 4 {
            break;
        }
    }
    last
}
