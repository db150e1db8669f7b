//! A network driver without a wire, for a size build on a generic Cortex-M.
//!
//! It implements `embassy_net_driver::Driver` like an Ethernet MAC would: the link is up, every
//! frame the stack sends is accepted (and dropped), and nothing is ever received. embassy-net,
//! smoltcp, DHCP, DNS, TCP, reqwless and alf are all linked and reachable exactly as on a real
//! board; only the MAC's own code is missing. A real driver replaces it: an SPI Ethernet chip
//! (`embassy-net-enc28j60`, `embassy-net-wiznet`), a chip HAL's Ethernet MAC, or a Wi-Fi driver
//! (`cyw43`, `esp-radio`), each with its own code and frame buffers.

use core::task::Context;

use embassy_net_driver::{Capabilities, Driver, HardwareAddress, LinkState, RxToken, TxToken};

/// Largest Ethernet frame without the FCS.
const FRAME: usize = 1514;

/// The driver. Holds one frame buffer, as a MAC driver would hold its DMA buffers.
pub struct NoWire {
    mac: [u8; 6],
    frame: [u8; FRAME],
}

impl NoWire {
    /// A driver with this MAC address (use a locally administered one: `0x02` first).
    pub const fn new(mac: [u8; 6]) -> Self {
        Self {
            mac,
            frame: [0; FRAME],
        }
    }
}

/// Nothing is received, so no receive token can exist.
pub enum NoFrame {}

impl RxToken for NoFrame {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, _f: F) -> R {
        match self {}
    }
}

/// Lends the frame buffer for one outgoing frame, then drops the frame.
pub struct Discard<'a>(&'a mut [u8; FRAME]);

impl TxToken for Discard<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let len = len.min(FRAME);
        f(&mut self.0[..len])
    }
}

impl Driver for NoWire {
    type RxToken<'a> = NoFrame;
    type TxToken<'a> = Discard<'a>;

    fn receive(&mut self, _cx: &mut Context<'_>) -> Option<(NoFrame, Discard<'_>)> {
        None
    }

    fn transmit(&mut self, _cx: &mut Context<'_>) -> Option<Discard<'_>> {
        Some(Discard(&mut self.frame))
    }

    fn link_state(&mut self, _cx: &mut Context<'_>) -> LinkState {
        LinkState::Up
    }

    fn capabilities(&self) -> Capabilities {
        let mut caps = Capabilities::default();
        caps.max_transmission_unit = FRAME;
        caps.max_burst_size = Some(1);
        caps
    }

    fn hardware_address(&self) -> HardwareAddress {
        HardwareAddress::Ethernet(self.mac)
    }
}
