import IPAM
import JSON
import Addresses

/// The plugin's configuration: the network config object the runtime sends on stdin, validated.
public struct NetworkConfig: Sendable {
    public var cniVersion: CNIVersion
    /// The `cniVersion` text as given (results and errors echo it).
    public var cniVersionText: String
    public var name: String
    public var type: String
    public var bridge: String
    public var isGateway: Bool
    public var isDefaultGateway: Bool
    public var forceAddress: Bool
    public var hairpinMode: Bool
    public var promiscMode: Bool
    /// Masquerade pod traffic to destinations outside the pod subnet, the cluster CIDR and
    /// `ipMasqExclude`, with one nftables rule per network.
    public var ipMasq: Bool
    public var ipMasqExclude: [IPNetwork]
    public var mtu: Int?
    /// `enabledad`: IPv6 duplicate address detection on the pod's addresses (off by default, as
    /// in the reference, so that IPv6 answers as soon as ADD returns); ADD then waits for it.
    public var enableDAD: Bool
    /// `macspoofchk`: drop frames from the pod whose source MAC is not the pod interface's.
    public var macSpoofCheck: Bool
    /// `disableContainerInterface`: leave the pod interface down (addresses still assigned).
    public var disableContainerInterface: Bool
    /// `portIsolation`: the host veth is an isolated bridge port (isolated ports do not reach each other).
    public var portIsolation: Bool
    /// `args.cni.mac` (the conventions' `args` key): the pod interface's MAC, unless `runtimeConfig.mac` says otherwise.
    public var argsMAC: String?
    public var ipam: IPAMConfig
    public var dns: DNS
    public var runtimeConfig: JSONObject
    public var prevResult: JSONValue?
    /// GC's `cni.dev/valid-attachments` (or the older `cni.dev/attachments`).
    public var validAttachments: [LeaseOwner]?
    /// The whole object as received, for delegated IPAM plugins.
    public var raw: JSONObject
    /// `logFile`, `logLevel`, `logMaxSize`: the invocation log, off when nil.
    public var log: LogSettings?

    public static let defaultBridge = "cni0"
    /// The most CIDRs `ipMasqExclude` may list. They go into one nftables set per rule, so the
    /// rule's size does not depend on them; the cap keeps the set's netlink message well inside
    /// one buffer (256 IPv6 intervals take about 19 KiB).
    public static let maxMasqueradeExclusions = 256

    /// Decodes and validates stdin. Undecodable JSON is code 6, a wrong cniVersion code 1,
    /// anything else wrong code 7 naming the field.
    /// `subnetFileOptional` (DEL): an unreadable `ipam.subnetFile` leaves the ranges empty.
    public static func parse(_ bytes: [UInt8], subnetFileOptional: Bool = false) throws(CNIError) -> NetworkConfig {
        try parse(object: try decodeObject(bytes), subnetFileOptional: subnetFileOptional)
    }

    /// Validates a config already decoded with `decodeObject`.
    public static func parse(object: JSONObject, subnetFileOptional: Bool = false) throws(CNIError) -> NetworkConfig {
        let fields = ConfigFields(object)
        let versionText = try fields.string("cniVersion")
        let version = try CNIVersion.from(config: versionText)

        let name = try fields.requiredString("name")
        guard Environment.isValidNetworkName(name) else {
            throw fields.invalid(
                "name",
                "\"\(name)\" is not a valid network name (it names a directory: start with a letter or digit, then letters, digits, '_', '.', '-')"
            )
        }
        let bridge = try fields.string("bridge") ?? defaultBridge
        guard Environment.isValidInterfaceName(bridge) else {
            throw fields.invalid("bridge", "\"\(bridge)\" is not a valid interface name")
        }
        let ipMasq = try fields.bool("ipMasq")
        var ipMasqExclude: [IPNetwork] = []
        let excludeTexts = try fields.stringArray("ipMasqExclude")
        guard excludeTexts.count <= NetworkConfig.maxMasqueradeExclusions else {
            throw fields.invalid(
                "ipMasqExclude", "lists \(excludeTexts.count) CIDRs; at most \(NetworkConfig.maxMasqueradeExclusions) are supported")
        }
        for (i, text) in excludeTexts.enumerated() {
            guard let n = IPNetwork(cidr: text) else {
                throw fields.invalid("ipMasqExclude[\(i)]", "\"\(text)\" is not a CIDR such as 192.168.1.0/24 or fd00:1::/64")
            }
            ipMasqExclude.append(n.masked)
        }
        if ipMasq && name.utf8.count > 100 {
            throw fields.invalid("name", "is longer than 100 bytes, too long to tag its ipMasq rule")
        }
        try refuseVLANOptions(fields)
        let macSpoofCheck = try fields.bool("macspoofchk")
        // "bridge-ipam-mac NAME DIGEST" must fit nftables' 127-byte comments.
        if macSpoofCheck && name.utf8.count > 94 {
            throw fields.invalid("name", "is longer than 94 bytes, too long to tag its macspoofchk rules")
        }
        let hairpinMode = try fields.bool("hairpinMode")
        let promiscMode = try fields.bool("promiscMode")
        if hairpinMode && promiscMode {
            throw fields.invalid("hairpinMode", "and promiscMode cannot both be set (as in the reference bridge plugin)")
        }
        var argsMAC: String?
        if let args = try fields.nested("args"), let cni = try args.nested("cni") { argsMAC = try cni.string("mac") }
        let isDefaultGateway = try fields.bool("isDefaultGateway")
        var validAttachments: [LeaseOwner]?
        for key in ["cni.dev/valid-attachments", "cni.dev/attachments"] where validAttachments == nil {
            guard let list = try fields.array(key) else { continue }
            var owners: [LeaseOwner] = []
            for (i, entry) in list.enumerated() {
                guard let o = entry.objectValue else { throw fields.invalid("\(key)[\(i)]", "must be an object") }
                let f = ConfigFields(o, path: "\(key)[\(i)]")
                owners.append(LeaseOwner(containerID: try f.requiredString("containerID"), ifname: try f.string("ifname") ?? ""))
            }
            validAttachments = owners
        }
        // An empty ipam section: layer 2 only, as in the reference (bridge and veths, no addresses).
        // A missing one stays an error: more often a mistake than a wish.
        guard let ipamFields = try fields.nested("ipam") else {
            throw fields.invalid(
                "ipam", "is required (e.g. {\"type\": \"host-local\", \"subnet\": \"10.244.1.0/24\"}, or {} for layer 2 only)")
        }
        let ipam = try IPAMConfig.parse(ipamFields, subnetFileOptional: subnetFileOptional)
        // Results before 0.3.0 hold one ip4 and one ip6 block: a second address of a family would be
        // leased and configured but never reported. Refused before anything is allocated, as host-local does.
        if version < .v0_3_0 && ipam.maxAddressesPerFamily > 1 {
            throw CNIError(
                .incompatibleVersion,
                "cniVersion \(versionText ?? version.description) results show one IPv4 and one IPv6 address, but ipam gives \(ipam.maxAddressesPerFamily) addresses of one family",
                details: "use cniVersion 0.3.0 or later, or one range set per IP family")
        }
        let disableContainerInterface = try fields.bool("disableContainerInterface")
        if disableContainerInterface && !ipam.isLayer2Only {
            throw fields.invalid(
                "disableContainerInterface",
                "cannot be combined with IPAM: a pod interface left down cannot use addresses (use \"ipam\": {})")
        }
        if let backend = try fields.string("ipMasqBackend"), backend != "nftables" {
            throw CNIError(
                .unsupportedField, "ipMasqBackend \"\(backend)\" is not supported by bridge-ipam",
                details:
                    "bridge-ipam programs its masquerade rule through nftables only; remove \"ipMasqBackend\" or set it to \"nftables\"")
        }
        if ipMasq && ipam.isLayer2Only {
            throw fields.invalid("ipMasq", "needs addresses: the ipam section is empty (layer 2 only)")
        }
        if ipMasq && !ipam.isBuiltIn {
            throw CNIError(
                .unsupportedField, "ipMasq needs the built-in host-local IPAM",
                details: "the masquerade rule's lifetime follows the network's leases, which only the built-in IPAM keeps")
        }
        return NetworkConfig(
            cniVersion: version,
            cniVersionText: versionText ?? version.description,
            name: name,
            type: try fields.string("type") ?? "",
            bridge: bridge,
            isGateway: try fields.bool("isGateway") || isDefaultGateway,
            isDefaultGateway: isDefaultGateway,
            forceAddress: try fields.bool("forceAddress"),
            hairpinMode: hairpinMode,
            promiscMode: promiscMode,
            ipMasq: ipMasq,
            ipMasqExclude: ipMasqExclude,
            mtu: try fields.int("mtu", in: 68...65535) ?? ipam.subnetFileMTU,
            enableDAD: try fields.bool("enabledad"),
            macSpoofCheck: macSpoofCheck,
            disableContainerInterface: disableContainerInterface,
            portIsolation: try fields.bool("portIsolation"),
            argsMAC: argsMAC,
            ipam: ipam,
            dns: try fields.nested("dns").map(DNS.parse) ?? DNS(),
            runtimeConfig: try fields.object("runtimeConfig") ?? JSONObject(),
            prevResult: fields.value("prevResult"),
            validAttachments: validAttachments,
            raw: object,
            log: try LogSettings.parse(fields))
    }

    /// The reference's VLAN options need bridge VLAN filtering, which we do not program: a config
    /// that relies on them is refused rather than silently attached untagged.
    static func refuseVLANOptions(_ fields: ConfigFields) throws(CNIError) {
        if let vlan = try fields.int("vlan", in: 0...4094), vlan != 0 {
            throw CNIError(.unsupportedField, "vlan is not supported by bridge-ipam", details: "remove \"vlan\" or set it to 0")
        }
        if let trunk = try fields.array("vlanTrunk"), !trunk.isEmpty {
            throw CNIError(.unsupportedField, "vlanTrunk is not supported by bridge-ipam", details: "remove \"vlanTrunk\"")
        }
        // preserveDefaultVlan only matters with vlan or vlanTrunk; its default (true) is what we do.
        if fields.value("preserveDefaultVlan") != nil, try !fields.bool("preserveDefaultVlan") {
            throw CNIError(
                .unsupportedField, "preserveDefaultVlan: false is not supported by bridge-ipam",
                details: "ports stay in the bridge's default VLAN; remove \"preserveDefaultVlan\"")
        }
    }

    /// Only the `cniVersion` of stdin, for VERSION (which must not validate anything else).
    public static func versionOnly(_ bytes: [UInt8]) throws(CNIError) -> String? {
        if bytes.allSatisfy({ $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }) { return nil }
        return try ConfigFields(try decodeObject(bytes)).string("cniVersion")
    }

    public static func decodeObject(_ bytes: [UInt8]) throws(CNIError) -> JSONObject {
        let value: JSONValue
        do { value = try JSONValue.parse(bytes) } catch {
            throw CNIError(.decodeFailure, "the network configuration on stdin is not valid JSON", details: error.description)
        }
        guard let object = value.objectValue else {
            throw CNIError(.decodeFailure, "the network configuration on stdin must be a JSON object, not \(value.typeName)")
        }
        return object
    }
}

/// The `ipam` section. The built-in allocator serves `host-local`; any other type is run as a
/// delegated plugin and only `type` is read here.
public struct IPAMConfig: Sendable {
    public var type: String
    public var rangeSets: [RangeSet]
    public var routes: [Route]
    public var dataDir: String
    public var resolvConf: String?
    /// The whole cluster's pod network (e.g. 10.244.0.0/16); the node's subnet must lie inside it.
    public var clusterCIDR: IPNetwork?
    /// The MTU the subnet file gives pods (`FLANNEL_MTU`): the node agent's tunnel or underlay
    /// MTU. The network's own `mtu` wins over it.
    public var subnetFileMTU: Int? = nil

    public static let builtInType = "host-local"
    public static let defaultDataDir = "/var/lib/cni/networks"

    public var isBuiltIn: Bool { type == IPAMConfig.builtInType }
    /// No IPAM at all (`"ipam": {}`): the pod interface gets no address.
    public var isLayer2Only: Bool { type.isEmpty }

    public static let layer2Only = IPAMConfig(
        type: "", rangeSets: [], routes: [], dataDir: defaultDataDir, resolvConf: nil, clusterCIDR: nil)

    /// The most addresses of one family an attachment gets (one per range set of that family).
    public var maxAddressesPerFamily: Int {
        let v4 = rangeSets.filter { $0.family == .v4 }.count
        return max(v4, rangeSets.count - v4)
    }

    static func parse(_ fields: ConfigFields, subnetFileOptional: Bool = false) throws(CNIError) -> IPAMConfig {
        if fields.object.isEmpty { return .layer2Only }
        let type = try fields.requiredString("type")
        var config = IPAMConfig(type: type, rangeSets: [], routes: [], dataDir: defaultDataDir, resolvConf: nil, clusterCIDR: nil)
        guard config.isBuiltIn else { return config }

        config.dataDir = try fields.string("dataDir") ?? defaultDataDir
        guard config.dataDir.hasPrefix("/") else { throw fields.invalid("dataDir", "must be an absolute path") }
        config.resolvConf = try fields.string("resolvConf")

        if let subnet = try fields.cidr("subnet") {
            config.rangeSets.append(try rangeSet([try range(fields, subnet: subnet)], fields, key: "subnet"))
        }
        if let sets = try fields.array("ranges") {
            for (i, setValue) in sets.enumerated() {
                guard let entries = setValue.arrayValue, !entries.isEmpty else {
                    throw fields.invalid("ranges[\(i)]", "must be a non-empty array of ranges")
                }
                var ranges: [IPRange] = []
                for (j, entry) in entries.enumerated() {
                    guard let o = entry.objectValue else { throw fields.invalid("ranges[\(i)][\(j)]", "must be an object") }
                    let f = ConfigFields(o, path: fields.name("ranges[\(i)][\(j)]"))
                    guard let subnet = try f.cidr("subnet") else { throw f.invalid("subnet", "is required") }
                    ranges.append(try range(f, subnet: subnet))
                }
                config.rangeSets.append(try rangeSet(ranges, fields, key: "ranges[\(i)]"))
            }
        }
        var clusterCIDR = try fields.cidr("clusterCIDR")
        if let path = try fields.string("subnetFile") {
            guard config.rangeSets.isEmpty else { throw fields.invalid("subnetFile", "cannot be combined with subnet or ranges") }
            let node: NodeSubnet
            do { node = try NodeSubnet.read(path, field: fields.name("subnetFile")) } catch {
                if subnetFileOptional { return config }  // DEL finds leases by owner, not by range
                throw error
            }
            for (subnet, gateway) in [(node.subnet, node.gateway)] + node.otherSubnets.map({ ($0, nil as IPAddress?) }) {
                let range: IPRange
                do { range = try IPRange(subnet: subnet, gateway: gateway) } catch {
                    throw fields.invalid("subnetFile", "\(path): \(error)")
                }
                config.rangeSets.append(try rangeSet([range], fields, key: "subnetFile"))
            }
            clusterCIDR = clusterCIDR ?? node.clusterCIDR
            config.subnetFileMTU = node.mtu
        }
        guard !config.rangeSets.isEmpty else {
            throw fields.invalid("subnet", "or ipam.ranges or ipam.subnetFile is required (e.g. \"subnet\": \"10.244.1.0/24\")")
        }
        if let cluster = clusterCIDR {
            guard cluster.isNetworkAddress else { throw fields.invalid("clusterCIDR", "\(cluster) has host bits set") }
            for set in config.rangeSets where set.family == cluster.address.family {
                for range in set.ranges where !(cluster.contains(range.subnet.network) && cluster.prefixLength <= range.subnet.prefixLength)
                {
                    throw fields.invalid("clusterCIDR", "\(cluster) does not contain the node's pod subnet \(range.subnet)")
                }
            }
        }
        config.clusterCIDR = clusterCIDR
        for i in config.rangeSets.indices {
            for j in config.rangeSets.indices where j > i && config.rangeSets[i].overlaps(config.rangeSets[j]) {
                throw fields.invalid("ranges", "range sets \(config.rangeSets[i]) and \(config.rangeSets[j]) overlap")
            }
        }
        if let routes = try fields.array("routes") {
            guard routes.count <= 256 else { throw fields.invalid("routes", "lists \(routes.count) routes; at most 256 are supported") }
            for (i, r) in routes.enumerated() {
                guard let o = r.objectValue else { throw fields.invalid("routes[\(i)]", "must be an object") }
                config.routes.append(try Route.parse(ConfigFields(o, path: fields.name("routes[\(i)]"))))
            }
        }
        return config
    }

    private static func range(_ f: ConfigFields, subnet: IPNetwork) throws(CNIError) -> IPRange {
        do {
            return try IPRange(
                subnet: subnet, rangeStart: try f.ip("rangeStart"), rangeEnd: try f.ip("rangeEnd"), gateway: try f.ip("gateway"))
        } catch let error as IPRange.Error {
            throw CNIError(.invalidConfig, "invalid network configuration: \(f.path.isEmpty ? "ipam" : f.path): \(error)")
        } catch let error as CNIError { throw error } catch { fatalError("unreachable: \(error)") }
    }

    private static func rangeSet(_ ranges: [IPRange], _ f: ConfigFields, key: String) throws(CNIError) -> RangeSet {
        do { return try RangeSet(ranges) } catch {
            throw f.invalid(key, "\(error)")
        }
    }
}

/// A route as CNI spells it: `{"dst": "0.0.0.0/0", "gw": "10.244.1.1"}`.
public struct Route: Equatable, Sendable {
    public var dst: IPNetwork
    public var gw: IPAddress?

    public init(dst: IPNetwork, gw: IPAddress? = nil) {
        self.dst = dst
        self.gw = gw
    }

    static func parse(_ f: ConfigFields) throws(CNIError) -> Route {
        guard let dst = try f.cidr("dst") else { throw f.invalid("dst", "is required") }
        let gw = try f.ip("gw")
        if let gw, gw.family != dst.address.family { throw f.invalid("gw", "\(gw) is not of the same IP family as dst \(dst)") }
        return Route(dst: dst.masked, gw: gw)
    }

    public var json: JSONValue {
        var o: JSONObject = ["dst": .string(dst.description)]
        if let gw { o["gw"] = .string(gw.description) }
        return .object(o)
    }
}

/// DNS settings for the result: from the config's `dns` and the IPAM section's `resolvConf`.
public struct DNS: Equatable, Sendable {
    public var nameservers: [String] = []
    public var domain: String?
    public var search: [String] = []
    public var options: [String] = []

    public init() {}

    public var isEmpty: Bool { nameservers.isEmpty && domain == nil && search.isEmpty && options.isEmpty }

    static func parse(_ f: ConfigFields) throws(CNIError) -> DNS {
        var dns = DNS()
        dns.nameservers = try f.stringArray("nameservers")
        dns.domain = try f.string("domain")
        dns.search = try f.stringArray("search")
        dns.options = try f.stringArray("options")
        return dns
    }

    /// Reads resolv.conf syntax (`nameserver`, `domain`, `search`, `options` lines).
    public static func parseResolvConf(_ text: String) -> DNS {
        var dns = DNS()
        for line in text.split(whereSeparator: { $0 == "\n" }) {
            let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            guard let keyword = words.first, !keyword.hasPrefix("#"), !keyword.hasPrefix(";") else { continue }
            let rest = Array(words.dropFirst())
            switch keyword {
            case "nameserver": dns.nameservers += rest.prefix(1)
            case "domain": dns.domain = rest.first
            case "search": dns.search = rest
            case "options": dns.options += rest
            default: continue
            }
        }
        return dns
    }

    /// Fields of `other` fill the ones this DNS leaves empty.
    public func merged(with other: DNS) -> DNS {
        var d = self
        if d.nameservers.isEmpty { d.nameservers = other.nameservers }
        if d.domain == nil { d.domain = other.domain }
        if d.search.isEmpty { d.search = other.search }
        if d.options.isEmpty { d.options = other.options }
        return d
    }

    public var json: JSONValue {
        var o = JSONObject()
        if !nameservers.isEmpty { o["nameservers"] = .array(nameservers.map(JSONValue.string)) }
        if let domain { o["domain"] = .string(domain) }
        if !search.isEmpty { o["search"] = .array(search.map(JSONValue.string)) }
        if !options.isEmpty { o["options"] = .array(options.map(JSONValue.string)) }
        return .object(o)
    }
}
