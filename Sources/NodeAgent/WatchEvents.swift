import JSON

/// One event of a watch stream: `{"type":"ADDED|MODIFIED|DELETED|BOOKMARK|ERROR","object":{...}}`.
public struct WatchEvent: Equatable, Sendable {
    public enum Kind: String, Sendable {
        case added = "ADDED"
        case modified = "MODIFIED"
        case deleted = "DELETED"
        case bookmark = "BOOKMARK"
        case error = "ERROR"
    }
    public var kind: Kind
    public var object: JSONValue

    public init(kind: Kind, object: JSONValue) {
        self.kind = kind
        self.object = object
    }

    public static func parse(_ line: [UInt8]) throws(KubeRequestError) -> WatchEvent {
        let value: JSONValue
        do { value = try JSONValue.parse(line) } catch { throw .transport("watch event is not JSON: \(error)") }
        guard let type = value["type"]?.stringValue, let kind = Kind(rawValue: type), let object = value["object"] else {
            throw .transport("watch event without a known type and an object: \(String(decoding: line.prefix(120), as: UTF8.self))")
        }
        return WatchEvent(kind: kind, object: object)
    }

    /// The object's metadata.resourceVersion.
    public var resourceVersion: String? { object["metadata"]?["resourceVersion"]?.stringValue }
    /// For an ERROR event: the Status object's code (410 when the resourceVersion is too old).
    public var statusCode: Int? { object["code"]?.intValue }
}

/// Cuts a byte stream into newline-terminated lines (the watch stream's framing: one JSON
/// document per line, split across chunks anywhere).
public struct LineSplitter {
    private var pending: [UInt8] = []
    public let maxLineLength: Int

    public init(maxLineLength: Int = 64 << 20) { self.maxLineLength = maxLineLength }

    public struct TooLong: Error {}

    /// Appends `bytes` and returns every line completed by them (without the newline; blank
    /// lines are dropped).
    public mutating func feed(_ bytes: UnsafeRawBufferPointer) throws(TooLong) -> [[UInt8]] {
        var lines: [[UInt8]] = []
        var start = 0
        for i in 0..<bytes.count where bytes[i] == UInt8(ascii: "\n") {
            pending.append(contentsOf: bytes[start..<i])
            if !pending.allSatisfy({ $0 == 0x20 || $0 == 0x0D || $0 == 0x09 }) { lines.append(pending) }
            pending.removeAll(keepingCapacity: true)
            start = i + 1
        }
        pending.append(contentsOf: bytes[start...])
        guard pending.count <= maxLineLength else { throw TooLong() }
        return lines
    }

    public var hasPartialLine: Bool { !pending.isEmpty }
}
