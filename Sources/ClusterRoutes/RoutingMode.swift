import Addresses

/// How this node reaches another node's pods.
///
/// - `direct`: a route to the peer's podCIDR via its InternalIP (the peer must be on-link);
/// - `vxlan`: a route via the peer's tunnel address over the VXLAN device, for every peer;
/// - `auto`: direct when the peer's InternalIP of the podCIDR's family is on one of this node's
///   links, VXLAN otherwise (flannel's VXLAN backend with DirectRouting, Calico's CrossSubnet).
public enum RoutingMode: String, Sendable, CaseIterable {
    case auto, direct, vxlan

    /// Whether pods may send through the tunnel, and so need its smaller MTU.
    public var usesTunnel: Bool { self != .direct }
}

/// The VXLAN device and its wire settings. VNI 1 on UDP port 8472 as flannel's default
/// backend (and Linux's own default port), so the device reads like flannel's `flannel.1`;
/// nothing else on a node may use that VNI and port.
public struct OverlaySettings: Equatable, Sendable {
    public var device = "bipam.1"
    public var vni: UInt32 = 1
    public var port: UInt16 = 8472

    public init() {}

    /// The encapsulation's overhead: outer IP + UDP (8) + VXLAN (8) + inner Ethernet (14).
    public static func overhead(underlay family: IPAddress.Family) -> UInt32 { family == .v4 ? 50 : 70 }

    /// A node's VTEP MAC, worked out from its underlay address by every node alike, so that the
    /// agents need nothing written to the API (the ClusterRole stays read-only): locally
    /// administered unicast `0e:62` then the IPv4 address, or a 32-bit FNV-1a of the IPv6 one.
    public static func vtepMAC(for underlay: IPAddress) -> MACAddress {
        let tail: [UInt8]
        switch underlay {
        case .v4: tail = underlay.bytes
        case .v6:
            var hash: UInt32 = 2_166_136_261
            for byte in underlay.bytes { hash = (hash ^ UInt32(byte)) &* 16_777_619 }
            tail = [UInt8(hash >> 24), UInt8(hash >> 16 & 0xFF), UInt8(hash >> 8 & 0xFF), UInt8(hash & 0xFF)]
        }
        return MACAddress(bytes: [0x0e, 0x62] + tail)!
    }

    /// A node's tunnel address in a family: its podCIDR's network address (as flannel's), which
    /// also sits on its own VXLAN device so its own traffic to remote pods has a pod source.
    public static func tunnelAddress(of podCIDR: IPNetwork) -> IPAddress { podCIDR.network }
}
