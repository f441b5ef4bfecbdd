import JSON

/// A CNI error: printed on stdout as `{"cniVersion","code","msg","details"}` with a non-zero exit.
public struct CNIError: Error, Equatable, CustomStringConvertible, Sendable {
    public var code: Int
    public var msg: String
    public var details: String

    public init(_ code: Code, _ msg: String, details: String = "") {
        self.init(code: code.rawValue, msg: msg, details: details)
    }

    public init(code: Int, msg: String, details: String = "") {
        self.code = code
        self.msg = msg
        self.details = details
    }

    /// The spec's well-known codes (1-99) and ours (100+). The README's table lists them all.
    public enum Code: Int, Sendable {
        case incompatibleVersion = 1
        case unsupportedField = 2
        case unknownContainer = 3
        case invalidEnvironment = 4
        case ioFailure = 5
        case decodeFailure = 6
        case invalidConfig = 7
        case tryAgainLater = 11
        case notAvailable = 50
        case notAvailableLimited = 51
        /// No free address left in a range (the message names it).
        case rangeExhausted = 100
        /// `CNI_IFNAME` already exists in the container's namespace.
        case interfaceExists = 101
        /// A netlink request failed (the message names the operation and errno).
        case netlinkFailure = 102
        /// The bridge is unusable: not a bridge, or holds a conflicting address.
        case bridgeConflict = 103
        /// A specifically requested address is taken, reserved or outside the ranges.
        case addressUnavailable = 104
        /// CHECK found the attachment different from `prevResult`.
        case checkFailed = 105
        /// The network namespace cannot be opened or is the node's own.
        case invalidNamespace = 106
        /// A delegated IPAM plugin could not be run or returned nonsense.
        case delegateFailure = 107
    }

    public var description: String { details.isEmpty ? "\(msg) (code \(code))" : "\(msg): \(details) (code \(code))" }

    public func json(cniVersion: String) -> JSONValue {
        var object: JSONObject = ["cniVersion": .string(cniVersion), "code": .int(code), "msg": .string(msg)]
        if !details.isEmpty { object["details"] = .string(details) }
        return .object(object)
    }
}
