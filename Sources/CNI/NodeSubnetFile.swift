#if canImport(Glibc)
import Glibc
#endif
import Addresses
import SystemIO

/// The node's pod subnet as the node's provisioner writes it, so that one conflist serves every
/// node. Two formats:
///
/// - flannel's `subnet.env`: `FLANNEL_SUBNET=10.244.1.1/24` (the gateway with the subnet's
///   prefix) and optionally `FLANNEL_NETWORK=10.244.0.0/16` (the cluster CIDR);
/// - a bare CIDR on a line of its own, e.g. the node's `spec.podCIDR` written by a DaemonSet;
///   a dual-stack node's `spec.podCIDRs` are one line each, at most one per family (as
///   bridge-ipam-agent writes them), and each becomes a range set of its own.
///
/// Either may carry `FLANNEL_MTU=1450`: the MTU pods get (bridge-ipam-agent writes the VXLAN
/// tunnel's, or the underlay's in direct routing mode; flannel writes its backend's).
public struct NodeSubnet: Equatable, Sendable {
    public var subnet: IPNetwork
    public var gateway: IPAddress?
    public var clusterCIDR: IPNetwork?
    /// Further bare CIDR lines: the node's podCIDR of the other family.
    public var otherSubnets: [IPNetwork] = []
    /// `FLANNEL_MTU`, the MTU for pods' interfaces.
    public var mtu: Int? = nil

    /// Why a subnet file's text could not be used.
    public enum ParseError: Error, Equatable, CustomStringConvertible {
        case noSubnet
        case invalid(key: String, value: String)
        case twoOfAFamily(String)
        public var description: String {
            switch self {
            case .noSubnet: return "it holds neither FLANNEL_SUBNET=... nor a CIDR line"
            case .twoOfAFamily(let line): return "\(line) is a second subnet of its family (one line per family)"
            case .invalid(let key, let value):
                return key == "FLANNEL_MTU" ? "\(key) \"\(value)\" is not an MTU (68-65535)" : "\(key) \"\(value)\" is not a CIDR"
            }
        }
    }

    /// Reads the text byte by byte: it runs on every ADD, and splitting it into Characters (with
    /// their grapheme rules) cost about 16,000 instructions per line.
    public static func parse(_ text: String) throws(ParseError) -> NodeSubnet { try parse(bytes: Array(text.utf8)) }

    static func parse(bytes: [UInt8]) throws(ParseError) -> NodeSubnet {
        var subnet: IPNetwork?
        var gateway: IPAddress?
        var cluster: IPNetwork?
        var others: [IPNetwork] = []
        var mtu: Int?
        var start = 0
        while start < bytes.count {
            var end = start
            while end < bytes.count && bytes[end] != UInt8(ascii: "\n") && bytes[end] != UInt8(ascii: "\r") { end += 1 }
            let line = trimmed(bytes[start..<end])
            start = end + 1
            if line.isEmpty || line.first == UInt8(ascii: "#") { continue }
            if let eq = line.firstIndex(of: UInt8(ascii: "=")) {
                let key = String(decoding: line[..<eq], as: UTF8.self)
                let value = unquoted(line[(eq + 1)...])
                switch key {
                case "FLANNEL_SUBNET":
                    guard let n = IPNetwork(cidr: value) else { throw .invalid(key: key, value: value) }
                    subnet = n.masked
                    if !n.isNetworkAddress { gateway = n.address }
                case "FLANNEL_NETWORK":
                    guard let n = IPNetwork(cidr: value) else { throw .invalid(key: key, value: value) }
                    cluster = n.masked
                case "FLANNEL_MTU":
                    guard let m = Int(value), (68...65535).contains(m) else { throw .invalid(key: key, value: value) }
                    mtu = m
                default: continue
                }
            } else {
                let text = String(decoding: line, as: UTF8.self)
                guard let n = IPNetwork(cidr: text) else { throw .invalid(key: "line", value: text) }
                guard let first = subnet else {
                    subnet = n.masked
                    continue
                }
                guard !([first] + others).contains(where: { $0.address.family == n.address.family }) else { throw .twoOfAFamily(text) }
                others.append(n.masked)
            }
        }
        guard let subnet else { throw .noSubnet }
        return NodeSubnet(subnet: subnet, gateway: gateway, clusterCIDR: cluster, otherSubnets: others, mtu: mtu)
    }

    /// Without leading and trailing spaces, tabs and line breaks.
    private static func trimmed(_ line: ArraySlice<UInt8>) -> ArraySlice<UInt8> {
        func isSpace(_ b: UInt8) -> Bool { b == 0x20 || (b >= 0x09 && b <= 0x0D) }
        guard let first = line.firstIndex(where: { !isSpace($0) }) else { return [] }
        return line[first...line.lastIndex(where: { !isSpace($0) })!]
    }

    /// A value without one pair of surrounding double or single quotes.
    private static func unquoted(_ value: ArraySlice<UInt8>) -> String {
        if value.count >= 2, let q = value.first, q == UInt8(ascii: "\"") || q == UInt8(ascii: "'"), value.last == q {
            return String(decoding: value.dropFirst().dropLast(), as: UTF8.self)
        }
        return String(decoding: value, as: UTF8.self)
    }

    /// Reads and parses the file at `path`; failures are code 7 errors naming the file.
    static func read(_ path: String, field: String) throws(CNIError) -> NodeSubnet {
        // Refused unless a regular file, without blocking: a FIFO (or device) of that name must
        // not hang the plugin.
        let bytes: [UInt8]
        do throws(SystemError) { bytes = try FileIO.read(path, limit: 64 * 1024) } catch {
            if error.operation == FileIO.notARegularFile {
                throw CNIError(.invalidConfig, "invalid network configuration: \(field) \(path) is not a regular file")
            }
            throw CNIError(
                .invalidConfig, "invalid network configuration: \(field) \(path) cannot be read: \(String(cString: strerror(error.errno)))",
                details: "the node's provisioner writes it (e.g. flannel's /run/flannel/subnet.env); is this node set up?")
        }
        do { return try parse(bytes: bytes) } catch {
            throw CNIError(.invalidConfig, "invalid network configuration: \(field) \(path): \(error)")
        }
    }
}
