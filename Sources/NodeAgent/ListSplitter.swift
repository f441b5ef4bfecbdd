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
    ///
    /// One pass over the bytes that only tracks strings and nesting; the bytes themselves are
    /// copied in runs (an item's, or the rest's), not one at a time.
    public mutating func feed(_ bytes: UnsafeRawBufferPointer) throws(TooLong) -> [[UInt8]] {
        var items: [[UInt8]] = []
        var runStart = 0
        var i = 0
        let count = bytes.count
        while i < count {
            let b = bytes[i]
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
                i += 1
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
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                if depth == 1 && b == UInt8(ascii: "[") && lastKey == ListSplitter.itemsKey && !inItems {
                    // The rest keeps `"items":[` and later `]`: an empty list.
                    try keep(bytes, from: runStart, to: i + 1)
                    inItems = true
                    runStart = i + 1
                } else if inItems && depth == 2 && !inItem {
                    runStart = i  // what came between two items is dropped
                    inItem = true
                    item.removeAll(keepingCapacity: true)
                }
                depth += 1
                if depth == 1 { expectingKey = true }
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                depth -= 1
                if inItems && depth == 1 {
                    inItems = false
                    runStart = i
                } else if inItem && depth == 2 {
                    try keep(bytes, from: runStart, to: i + 1)
                    inItem = false
                    items.append(item)
                    runStart = i + 1
                }
            case UInt8(ascii: ","):
                if depth == 1 { expectingKey = true }
            default:
                break
            }
            i += 1
        }
        try keep(bytes, from: runStart, to: count)
        return items
    }

    /// Copies a run of bytes where they belong now: into the item under way, into the rest, or
    /// nowhere (between two items).
    private mutating func keep(_ bytes: UnsafeRawBufferPointer, from start: Int, to end: Int) throws(TooLong) {
        guard start < end else { return }
        if inItem {
            item.append(contentsOf: bytes[start..<end])
            guard item.count <= maxItemLength else { throw TooLong() }
        } else if !inItems {
            rest.append(contentsOf: bytes[start..<end])
            guard rest.count <= maxItemLength else { throw TooLong() }
        }
    }

    /// The list without its items (`"items":[]`), once every byte has been fed.
    public func remainder() throws(JSONParseError) -> JSONValue { try JSONValue.parse(rest) }
}
