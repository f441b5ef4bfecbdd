import IPAM
import JSON
import Addresses

/// Typed reads of config fields; each failure is a code 7 error naming the field's path,
/// e.g. `ipam.ranges[0][1].subnet`.
struct ConfigFields {
    let object: JSONObject
    let path: String

    init(_ object: JSONObject, path: String = "") {
        self.object = object
        self.path = path
    }

    func name(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    func invalid(_ key: String, _ reason: String) -> CNIError {
        CNIError(.invalidConfig, "invalid network configuration: \(name(key)) \(reason)")
    }

    func value(_ key: String) -> JSONValue? {
        guard let v = object[key], !v.isNull else { return nil }
        return v
    }

    func string(_ key: String) throws(CNIError) -> String? {
        guard let v = value(key) else { return nil }
        guard let s = v.stringValue else { throw invalid(key, "must be a string, not \(v.typeName)") }
        return s
    }

    func requiredString(_ key: String) throws(CNIError) -> String {
        guard let s = try string(key), !s.isEmpty else { throw invalid(key, "is required") }
        return s
    }

    func bool(_ key: String) throws(CNIError) -> Bool {
        guard let v = value(key) else { return false }
        guard let b = v.boolValue else { throw invalid(key, "must be true or false, not \(v.typeName)") }
        return b
    }

    func int(_ key: String, in range: ClosedRange<Int>) throws(CNIError) -> Int? {
        guard let v = value(key) else { return nil }
        guard let i = v.intValue else { throw invalid(key, "must be an integer, not \(v.serialized())") }
        guard range.contains(i) else { throw invalid(key, "must be between \(range.lowerBound) and \(range.upperBound), not \(i)") }
        return i
    }

    func object(_ key: String) throws(CNIError) -> JSONObject? {
        guard let v = value(key) else { return nil }
        guard let o = v.objectValue else { throw invalid(key, "must be an object, not \(v.typeName)") }
        return o
    }

    func array(_ key: String) throws(CNIError) -> [JSONValue]? {
        guard let v = value(key) else { return nil }
        guard let a = v.arrayValue else { throw invalid(key, "must be an array, not \(v.typeName)") }
        return a
    }

    func stringArray(_ key: String) throws(CNIError) -> [String] {
        guard let a = try array(key) else { return [] }
        var out: [String] = []
        for (i, v) in a.enumerated() {
            guard let s = v.stringValue else { throw invalid("\(key)[\(i)]", "must be a string") }
            out.append(s)
        }
        return out
    }

    func ip(_ key: String) throws(CNIError) -> IPAddress? {
        guard let s = try string(key) else { return nil }
        guard let ip = IPAddress(s) else { throw invalid(key, "\"\(s)\" is not an IP address") }
        return ip
    }

    func cidr(_ key: String) throws(CNIError) -> IPNetwork? {
        guard let s = try string(key) else { return nil }
        guard let n = IPNetwork(cidr: s) else { throw invalid(key, "\"\(s)\" is not a CIDR such as 10.244.1.0/24") }
        return n
    }

    func nested(_ key: String) throws(CNIError) -> ConfigFields? {
        try object(key).map { ConfigFields($0, path: name(key)) }
    }
}
