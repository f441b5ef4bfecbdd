import CNI
import IPAM
import JSON
import Netlink
import Addresses

/// What the runtime asks of this attachment beyond the config: specific addresses and a MAC,
/// from `runtimeConfig` (capabilities `ips`, `mac`), the config's `args.cni.mac`, or `CNI_ARGS` (`IP=`, `MAC=`).
struct RuntimeRequests {
    var addresses: [IPAddress] = []
    var mac: MACAddress?

    /// Keys of CNI_ARGS we understand; any other is an error unless `IgnoreUnknown=1`.
    static let knownArgs: Set<String> = [
        "IgnoreUnknown", "IP", "MAC", "K8S_POD_NAMESPACE", "K8S_POD_NAME", "K8S_POD_INFRA_CONTAINER_ID", "K8S_POD_UID",
    ]

    init(environment: Environment, config: NetworkConfig) throws(CNIError) {
        let ignoreUnknown = ["1", "true", "True"].contains(environment.arg("IgnoreUnknown") ?? "")
        let unknown = environment.args.map(\.key).filter { !RuntimeRequests.knownArgs.contains($0) }
        if !unknown.isEmpty && !ignoreUnknown {
            throw CNIError(
                .invalidEnvironment, "unknown CNI_ARGS: \(unknown.joined(separator: ", "))",
                details: "add IgnoreUnknown=1 to CNI_ARGS to ignore them")
        }
        if let ips = config.runtimeConfig["ips"] {
            guard let list = ips.arrayValue else {
                throw CNIError(.invalidConfig, "invalid network configuration: runtimeConfig.ips must be an array")
            }
            for entry in list {
                guard let text = entry.stringValue, let ip = RuntimeRequests.parseAddress(text) else {
                    throw CNIError(
                        .invalidConfig, "invalid network configuration: runtimeConfig.ips entry \(entry.serialized()) is not an IP address")
                }
                addresses.append(ip)
            }
        }
        if let text = environment.arg("IP") {
            for part in text.split(separator: ",") {
                guard let ip = RuntimeRequests.parseAddress(String(part)) else {
                    throw CNIError(.invalidEnvironment, "CNI_ARGS IP=\(text) is not an IP address")
                }
                if !addresses.contains(ip) { addresses.append(ip) }
            }
        }
        // As the reference: runtimeConfig.mac, then the config's args.cni.mac, then CNI_ARGS MAC=.
        if let value = config.runtimeConfig["mac"] {
            guard let text = value.stringValue, let mac = MACAddress(text) else {
                throw CNIError(
                    .invalidConfig, "invalid network configuration: runtimeConfig.mac \(value.serialized()) is not a MAC address")
            }
            self.mac = mac
        } else if let text = config.argsMAC {
            guard let mac = MACAddress(text) else {
                throw CNIError(.invalidConfig, "invalid network configuration: args.cni.mac \"\(text)\" is not a MAC address")
            }
            self.mac = mac
        } else if let text = environment.arg("MAC") {
            guard let mac = MACAddress(text) else { throw CNIError(.invalidEnvironment, "CNI_ARGS MAC=\(text) is not a MAC address") }
            self.mac = mac
        }
        if let mac, mac.bytes[0] & 1 == 1 {
            throw CNIError(.invalidConfig, "invalid network configuration: MAC \(mac) is a multicast address")
        }
    }

    /// Accepts `10.244.1.9` and `10.244.1.9/24`.
    static func parseAddress(_ text: String) -> IPAddress? {
        if let n = IPNetwork(cidr: text) { return n.address }
        return IPAddress(text)
    }
}
