#if canImport(Glibc)
import Glibc
#endif
import Addresses
import CNFTNL
import Netlink

/// A named set of addresses in one of our tables, and the messages that create it and change
/// its elements. Elements go in chunks of `elementsPerMessage`: libnftnl writes a message's
/// elements into one nested attribute without checking room, so a set of thousands of
/// intervals must be sent as several messages (of one transaction) to fit.
struct IntervalSet {
    let table: String
    /// NFPROTO_* of the table.
    let tableFamily: UInt8
    /// The family as nft names it, for messages (`ip`, `ip6`, `inet`).
    let keyword: String
    let name: String
    /// The family of the addresses it holds.
    let family: IPAddress.Family

    /// At most this many elements per message (an interval takes two), so that each message stays
    /// far below the message limit (about 10 KiB of IPv4, 16 KiB of IPv6 addresses).
    static let elementsPerMessage = 500

    nonisolated(unsafe) static var nextSetID: UInt32 = 0

    /// libnftnl's description of the set, for a message to fill; the caller frees it.
    func newSet() -> OpaquePointer {
        let s = nftnl_set_alloc()!
        nftnl_set_set_str(s, UInt16(NFTNL_SET_TABLE.rawValue), table)
        nftnl_set_set_str(s, UInt16(NFTNL_SET_NAME.rawValue), name)
        nftnl_set_set_u32(s, UInt16(NFTNL_SET_FAMILY.rawValue), UInt32(tableFamily))
        // nft's datatypes ipv4_addr (7) and ipv6_addr (8), so that `nft list` shows addresses.
        nftnl_set_set_u32(s, UInt16(NFTNL_SET_KEY_TYPE.rawValue), family == .v4 ? 7 : 8)
        nftnl_set_set_u32(s, UInt16(NFTNL_SET_KEY_LEN.rawValue), family == .v4 ? 4 : 16)
        return s
    }

    /// Creates the set if missing (NLM_F_CREATE without NLM_F_EXCL): an interval set, or (`map`)
    /// a verdict map keyed by single addresses.
    func add(map: Bool = false, to batch: inout NetlinkSocket.Batch) {
        batch.add(
            "create \(map ? "map" : "set") \(keyword) \(table) \(name)", type: OwnChain.messageType(NFT_MSG_NEWSET), flags: NLM_F_CREATE
        ) { m in
            m.put(header: OwnChain.header(family: tableFamily))
            let s = newSet()
            defer { nftnl_set_free(s) }
            // The kernel wants an id for every new set (rules of the same transaction may name it by id).
            IntervalSet.nextSetID &+= 1
            nftnl_set_set_u32(s, UInt16(NFTNL_SET_ID.rawValue), IntervalSet.nextSetID)
            if map {
                nftnl_set_set_u32(s, UInt16(NFTNL_SET_FLAGS.rawValue), NFT_SET_MAP.rawValue)
                nftnl_set_set_u32(s, UInt16(NFTNL_SET_DATA_TYPE.rawValue), NFT_DATA_VERDICT.rawValue)
            } else {
                nftnl_set_set_u32(s, UInt16(NFTNL_SET_FLAGS.rawValue), NFT_SET_INTERVAL.rawValue)
            }
            m.withHeader { nftnl_set_nlmsg_build_payload($0, s) }
        }
    }

    /// DELSETELEM without elements empties the set.
    func flush(to batch: inout NetlinkSocket.Batch) {
        batch.add("flush set \(keyword) \(table) \(name)", type: OwnChain.messageType(NFT_MSG_DELSETELEM)) { m in
            m.put(header: OwnChain.header(family: tableFamily))
            let s = newSet()
            defer { nftnl_set_free(s) }
            m.withHeader { nftnl_set_elems_nlmsg_build_payload($0, s) }
        }
    }

    /// Adds or deletes ranges of the interval set: each is its first address, and the address
    /// after its last flagged as an interval end (none when it runs to the end of the family).
    func elements(_ ranges: [ClosedRange<IPAddress>], delete: Bool, to batch: inout NetlinkSocket.Batch) {
        var start = 0
        while start < ranges.count {
            let chunk = ranges[start..<min(ranges.count, start + IntervalSet.elementsPerMessage / 2)]
            start += chunk.count
            batch.add(
                "\(delete ? "delete" : "add") \(chunk.count) elements of set \(keyword) \(table) \(name)",
                type: OwnChain.messageType(delete ? NFT_MSG_DELSETELEM : NFT_MSG_NEWSETELEM), flags: delete ? 0 : NLM_F_CREATE
            ) { m in
                m.put(header: OwnChain.header(family: tableFamily))
                let s = newSet()
                defer { nftnl_set_free(s) }
                for range in chunk {
                    IntervalSet.addElement(range.lowerBound.bytes, to: s) { _ in }
                    if let end = range.upperBound.advanced(by: 1) {
                        IntervalSet.addElement(end.bytes, to: s) {
                            nftnl_set_elem_set_u32($0, UInt16(NFTNL_SET_ELEM_FLAGS), NFT_SET_ELEM_INTERVAL_END.rawValue)
                        }
                    }
                }
                m.withHeader { nftnl_set_elems_nlmsg_build_payload($0, s) }
            }
        }
    }

    /// The messages that turn a set holding `old` into one holding `new`: the ranges that
    /// differ, deleted then added.
    func update(from old: [ClosedRange<IPAddress>], to new: [ClosedRange<IPAddress>], _ batch: inout NetlinkSocket.Batch) {
        let before = Set(old.map { [$0.lowerBound, $0.upperBound] })
        let after = Set(new.map { [$0.lowerBound, $0.upperBound] })
        let gone = old.filter { !after.contains([$0.lowerBound, $0.upperBound]) }
        let added = new.filter { !before.contains([$0.lowerBound, $0.upperBound]) }
        if !gone.isEmpty { elements(gone, delete: true, to: &batch) }
        if !added.isEmpty { elements(added, delete: false, to: &batch) }
    }

    static func addElement(_ key: [UInt8], to set: OpaquePointer, _ configure: (OpaquePointer) -> Void) {
        let element = nftnl_set_elem_alloc()!
        key.withUnsafeBytes { _ = nftnl_set_elem_set(element, UInt16(NFTNL_SET_ELEM_KEY), $0.baseAddress, UInt32($0.count)) }
        configure(element)
        nftnl_set_elem_add(set, element)  // the set owns it from here
    }
}
