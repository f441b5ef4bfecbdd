import JSON

/// Cuts a List response (`{"kind":"NodeList","metadata":{...},"items":[{...},{...}]}`) into
/// its items as the bytes arrive, so each item is parsed on its own and dropped: the agent
/// never holds a whole page as one buffer or one parsed tree. What is left once the items are
/// taken out (`kind`, `metadata` with `resourceVersion` and `continue`) is kept to the end.
public struct ListSplitter {
    public let maxItemLength: Int
    public struct TooLong: Error {}

    private var depth = 0
    private var inString = false
    private var escaped = false
    private var expectingKey = false
    private var capturingKey = false
    private var key: [UInt8] = []
    private var lastKey: [UInt8] = []
    private var inItems = false
    private var inItem = false
    private var item: [UInt8] = []
    private var rest: [UInt8] = []
    private static let itemsKey = Array("items".utf8)

    public init(maxItemLength: Int = 16 << 20) { self.maxItemLength = maxItemLength }

    /// Takes the next bytes; returns the items completed by them, each one JSON value's text.
    public mutating func feed(_ bytes: UnsafeRawBufferPointer) throws(TooLong) -> [[UInt8]] {
        var items: [[UInt8]] = []
        for b in bytes {
            if inString {
                if escaped {
                    escaped = false
                } else if b == UInt8(ascii: "\\") {
                    escaped = true
                } else if b == UInt8(ascii: "\"") {
                    inString = false
                    if capturingKey {
                        capturingKey = false
                        lastKey = key
                    }
                } else if capturingKey && key.count < 64 {
                    key.append(b)
                }
                try keep(b)
                continue
            }
            switch b {
            case UInt8(ascii: "\""):
                inString = true
                if depth == 1 && expectingKey {
                    capturingKey = true
                    expectingKey = false
                    key.removeAll(keepingCapacity: true)
                }
                try keep(b)
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                if depth == 1 && b == UInt8(ascii: "[") && lastKey == ListSplitter.itemsKey && !inItems {
                    inItems = true
                    depth += 1
                    rest.append(b)
                    continue
                }
                if inItems && depth == 2 && !inItem {
                    inItem = true
                    item.removeAll(keepingCapacity: true)
                }
                depth += 1
                if depth == 1 { expectingKey = true }
                try keep(b)
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                depth -= 1
                if inItems && depth == 1 {
                    inItems = false
                    rest.append(b)
                    continue
                }
                try keep(b)
                if inItem && depth == 2 {
                    inItem = false
                    items.append(item)
                }
            case UInt8(ascii: ","):
                if depth == 1 { expectingKey = true }
                try keep(b)
            default:
                try keep(b)
            }
        }
        return items
    }

    private mutating func keep(_ b: UInt8) throws(TooLong) {
        if inItem {
            item.append(b)
            guard item.count <= maxItemLength else { throw TooLong() }
        } else if !inItems {
            rest.append(b)
            guard rest.count <= maxItemLength else { throw TooLong() }
        }
        // Between two items (commas, blanks, a stray scalar): nothing to keep.
    }

    /// The list without its items (`"items":[]`), once every byte has been fed.
    public func remainder() throws(JSONParseError) -> JSONValue { try JSONValue.parse(rest) }
}
