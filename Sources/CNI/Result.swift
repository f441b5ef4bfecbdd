import IPAM
import JSON
import Addresses

/// An ADD result, written in the format of the config's `cniVersion`.
public struct CNIResult: Equatable, Sendable {
    public struct Interface: Equatable, Sendable {
        public var name: String
        public var mac: String
        public var mtu: Int?
        /// The netns path for interfaces inside the container; nil for the node's.
        public var sandbox: String?
        public init(name: String, mac: String, mtu: Int? = nil, sandbox: String? = nil) {
            self.name = name
            self.mac = mac
            self.mtu = mtu
            self.sandbox = sandbox
        }
    }

    public struct IPConfig: Equatable, Sendable {
        public var address: IPNetwork
        public var gateway: IPAddress?
        /// Index into `interfaces`.
        public var interface: Int?
        public init(address: IPNetwork, gateway: IPAddress?, interface: Int?) {
            self.address = address
            self.gateway = gateway
            self.interface = interface
        }
    }

    public var interfaces: [Interface] = []
    public var ips: [IPConfig] = []
    public var routes: [Route] = []
    public var dns = DNS()

    public init() {}

    public func json(version: CNIVersion, versionText: String) -> JSONValue {
        var o: JSONObject = ["cniVersion": .string(versionText)]
        if version < .v0_3_0 {
            // 0.1.0 / 0.2.0: one ip4 and one ip6 block, routes inside them, no interfaces.
            for family in [IPAddress.Family.v4, .v6] {
                guard let ip = ips.first(where: { $0.address.address.family == family }) else { continue }
                var block: JSONObject = ["ip": .string(ip.address.description)]
                if let gw = ip.gateway { block["gateway"] = .string(gw.description) }
                let familyRoutes = routes.filter { $0.dst.address.family == family }
                if !familyRoutes.isEmpty { block["routes"] = .array(familyRoutes.map(\.json)) }
                o[family == .v4 ? "ip4" : "ip6"] = .object(block)
            }
            o["dns"] = dns.json
            return .object(o)
        }
        if !interfaces.isEmpty {
            o["interfaces"] = .array(
                interfaces.map { i in
                    var e: JSONObject = ["name": .string(i.name)]
                    if !i.mac.isEmpty { e["mac"] = .string(i.mac) }
                    if let mtu = i.mtu, version >= .v1_0_0 { e["mtu"] = .int(mtu) }
                    if let sandbox = i.sandbox { e["sandbox"] = .string(sandbox) }
                    return .object(e)
                })
        }
        if !ips.isEmpty {
            o["ips"] = .array(
                ips.map { ip in
                    var e = JSONObject()
                    if version < .v1_0_0 { e["version"] = .string(ip.address.address.family == .v4 ? "4" : "6") }
                    if let index = ip.interface { e["interface"] = .int(index) }
                    e["address"] = .string(ip.address.description)
                    if let gw = ip.gateway { e["gateway"] = .string(gw.description) }
                    return .object(e)
                })
        }
        if !routes.isEmpty { o["routes"] = .array(routes.map(\.json)) }
        o["dns"] = dns.json
        return .object(o)
    }

    /// Reads a 0.3.0-1.1.0 result (a `prevResult`, or a delegated IPAM plugin's answer).
    public static func parse(_ value: JSONValue, what: String = "prevResult") throws(CNIError) -> CNIResult {
        func bad(_ reason: String) -> CNIError {
            CNIError(.decodeFailure, "cannot decode \(what): \(reason)")
        }
        guard let o = value.objectValue else { throw bad("not an object") }
        if o["ip4"] != nil || o["ip6"] != nil { throw bad("results before CNI 0.3.0 cannot be chained or checked") }
        var result = CNIResult()
        for (i, v) in (o["interfaces"]?.arrayValue ?? []).enumerated() {
            guard let e = v.objectValue, let name = e["name"]?.stringValue else { throw bad("interfaces[\(i)] has no name") }
            result.interfaces.append(
                Interface(
                    name: name, mac: e["mac"]?.stringValue ?? "", mtu: e["mtu"]?.intValue,
                    sandbox: e["sandbox"]?.stringValue.flatMap { $0.isEmpty ? nil : $0 }))
        }
        for (i, v) in (o["ips"]?.arrayValue ?? []).enumerated() {
            guard let e = v.objectValue, let text = e["address"]?.stringValue, let address = IPNetwork(cidr: text) else {
                throw bad("ips[\(i)].address is missing or not a CIDR")
            }
            var gateway: IPAddress?
            if let g = e["gateway"]?.stringValue {
                guard let ip = IPAddress(g) else { throw bad("ips[\(i)].gateway \"\(g)\" is not an IP address") }
                gateway = ip
            }
            result.ips.append(IPConfig(address: address, gateway: gateway, interface: e["interface"]?.intValue))
        }
        for (i, v) in (o["routes"]?.arrayValue ?? []).enumerated() {
            guard let e = v.objectValue else { throw bad("routes[\(i)] is not an object") }
            do { result.routes.append(try Route.parse(ConfigFields(e, path: "\(what).routes[\(i)]"))) } catch {
                throw bad(error.msg)
            }
        }
        if let d = o["dns"]?.objectValue {
            do { result.dns = try DNS.parse(ConfigFields(d, path: "\(what).dns")) } catch { throw bad(error.msg) }
        }
        return result
    }
}
