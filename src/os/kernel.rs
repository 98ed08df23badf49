//! Linux: the kernel's socket state numbers, as both `/proc/net/{tcp,udp}*` (`st`) and sock_diag
//! netlink (`idiag_state`) report them, and the [`State`] each reads as. The one mapping the
//! netlink and procfs backends share, both ways.
//!
//! UDP sockets use the TCP numbers too (`include/net/tcp_states.h`): 07 (`TCP_CLOSE`) for a
//! socket without a peer, which reads as `UNCONN`, and 01 (`TCP_ESTABLISHED`) for a connected
//! one; `udp_disconnect` clears the peer and sets `TCP_CLOSE` again, so the number alone tells.
//! Any other number in a UDP table reads as it would in a TCP table.

use netlink_packet_sock_diag::constants::{
    TCP_CLOSE, TCP_CLOSE_WAIT, TCP_CLOSING, TCP_ESTABLISHED, TCP_FIN_WAIT1, TCP_FIN_WAIT2,
    TCP_LAST_ACK, TCP_LISTEN, TCP_SYN_RECV, TCP_SYN_SENT, TCP_TIME_WAIT,
};

use crate::core::model::{Proto, State};

/// A connection still in its listener's SYN queue: a request socket. The crate's constants stop
/// at `TCP_CLOSING` (11), so this one is written out (`include/net/tcp_states.h`).
pub const TCP_NEW_SYN_RECV: u8 = 12;

/// Every state number the kernel shows in `/proc/net` and the TCP state it reads as; entry N is
/// state number N + 1. Not `TCP_BOUND_INACTIVE` (13): bound but unused sockets appear in no
/// table.
const TCP_STATES: [(u8, State); 12] = [
    (TCP_ESTABLISHED, State::Established),
    (TCP_SYN_SENT, State::SynSent),
    (TCP_SYN_RECV, State::SynRecv),
    (TCP_FIN_WAIT1, State::FinWait1),
    (TCP_FIN_WAIT2, State::FinWait2),
    (TCP_TIME_WAIT, State::TimeWait),
    (TCP_CLOSE, State::Close),
    (TCP_CLOSE_WAIT, State::CloseWait),
    (TCP_LAST_ACK, State::LastAck),
    (TCP_LISTEN, State::Listen),
    (TCP_CLOSING, State::Closing),
    (TCP_NEW_SYN_RECV, State::NewSynRecv),
];

// The lookup by index in `state_of` needs the entries in order of their numbers.
const _: () = {
    let mut index = 0;
    while index < TCP_STATES.len() {
        assert!(TCP_STATES[index].0 as usize == index + 1);
        index += 1;
    }
};

/// Bit N set for every state number N in [`TCP_STATES`]: `idiag_states` asking for every state
/// `/proc/net` shows.
pub const EVERY_STATE: u32 = (1 << (TCP_NEW_SYN_RECV + 1)) - (1 << TCP_ESTABLISHED);

/// The state a kernel state number reads as in a `proto` table; `None` for a number portstat
/// does not know. Called once per socket: a lookup by index.
pub fn state_of(proto: Proto, number: u8) -> Option<State> {
    if proto == Proto::Udp && number == TCP_CLOSE {
        return Some(State::Unconn);
    }
    let (_, state) = TCP_STATES.get(usize::from(number).wrapping_sub(1))?;
    Some(*state)
}

/// The kernel state number that reads as `state` in a `proto` table: the inverse of
/// [`state_of`]. `None` for a state that table never holds (`UNCONN` TCP, `CLOSE` UDP).
///
/// `NEW_SYN_RECV` gives `TCP_SYN_RECV`: sock_diag (like `/proc/net/tcp`) reports request sockets
/// as `SYN_RECV`, and dumps them whenever `SYN_RECV` is asked for.
pub fn kernel_state(proto: Proto, state: State) -> Option<u8> {
    match (proto, state) {
        (Proto::Udp, State::Unconn) => Some(TCP_CLOSE),
        (Proto::Udp, State::Close) | (Proto::Tcp, State::Unconn) => None,
        (_, State::NewSynRecv) => Some(TCP_SYN_RECV),
        _ => TCP_STATES
            .iter()
            .find(|&&(_, known)| known == state)
            .map(|&(number, _)| number),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_numbers_map_to_their_states() {
        let tcp: Vec<_> = (1..=12).map(|n| state_of(Proto::Tcp, n)).collect();
        assert_eq!(
            tcp,
            [
                State::Established,
                State::SynSent,
                State::SynRecv,
                State::FinWait1,
                State::FinWait2,
                State::TimeWait,
                State::Close,
                State::CloseWait,
                State::LastAck,
                State::Listen,
                State::Closing,
                State::NewSynRecv,
            ]
            .map(Some)
        );
        for unknown in [0, 13, 14, 0xff] {
            assert_eq!(state_of(Proto::Tcp, unknown), None);
            assert_eq!(state_of(Proto::Udp, unknown), None);
        }
    }

    #[test]
    fn udp_close_is_unconn_and_everything_else_reads_as_tcp() {
        assert_eq!(state_of(Proto::Udp, 7), Some(State::Unconn));
        assert_eq!(state_of(Proto::Tcp, 7), Some(State::Close));
        assert_eq!(state_of(Proto::Udp, 1), Some(State::Established));
        for number in (1..=12).filter(|&n| n != 7) {
            assert_eq!(state_of(Proto::Udp, number), state_of(Proto::Tcp, number));
        }
    }

    #[test]
    fn every_state_maps_both_ways() {
        for proto in [Proto::Tcp, Proto::Udp] {
            for state in State::ALL {
                let Some(number) = kernel_state(proto, state) else {
                    continue;
                };
                // Request sockets come back as SYN_RECV, in either table's reading.
                let expected = match state {
                    State::NewSynRecv => State::SynRecv,
                    _ => state,
                };
                assert_eq!(
                    state_of(proto, number),
                    Some(expected),
                    "{proto:?} {state:?}"
                );
            }
            // And every known number comes from some state.
            for number in (1..=12).filter(|&n| n != TCP_NEW_SYN_RECV) {
                let state = state_of(proto, number).unwrap();
                assert_eq!(
                    kernel_state(proto, state),
                    Some(number),
                    "{proto:?} {number}"
                );
            }
        }
        let unmapped: Vec<_> = State::ALL
            .into_iter()
            .filter(|&state| kernel_state(Proto::Tcp, state).is_none())
            .collect();
        assert_eq!(unmapped, [State::Unconn]);
        let unmapped: Vec<_> = State::ALL
            .into_iter()
            .filter(|&state| kernel_state(Proto::Udp, state).is_none())
            .collect();
        assert_eq!(unmapped, [State::Close]);
    }

    #[test]
    fn every_state_is_bits_1_to_12() {
        assert_eq!(EVERY_STATE, 0x1ffe);
    }
}
