import Addresses
import CNFTNL

/// The expressions that match an address of the network header against a network, shared by
/// every rule we write (the plugin's ipMasq, the agent's masquerade and FORWARD accepts).
enum AddressMatch {
    /// payload (the address at `offset` of the network header) -> register 1.
    static func loadPayload(_ rule: OpaquePointer, offset: UInt32, length: UInt32) {
        let payload = nftnl_expr_alloc("payload")!
        nftnl_expr_set_u32(payload, UInt16(NFTNL_EXPR_PAYLOAD_DREG), UInt32(NFT_REG_1.rawValue))
        nftnl_expr_set_u32(payload, UInt16(NFTNL_EXPR_PAYLOAD_BASE), UInt32(NFT_PAYLOAD_NETWORK_HEADER.rawValue))
        nftnl_expr_set_u32(payload, UInt16(NFTNL_EXPR_PAYLOAD_OFFSET), offset)
        nftnl_expr_set_u32(payload, UInt16(NFTNL_EXPR_PAYLOAD_LEN), length)
        nftnl_rule_add_expr(rule, payload)
    }

    /// payload -> bitwise AND prefix mask -> cmp ==. With `wholeBytesUnmasked`, a prefix of whole
    /// bytes loads only those bytes and compares them unmasked: iptables-nft's encoding of
    /// `-s`/`-d`, which it must find again to list and restore a chain we wrote into.
    static func match(_ rule: OpaquePointer, offset: UInt32, network: IPNetwork, wholeBytesUnmasked: Bool = false) {
        let unmasked = wholeBytesUnmasked && network.prefixLength % 8 == 0
        let length = UInt32(unmasked ? network.prefixLength / 8 : network.address.bitWidth / 8)
        loadPayload(rule, offset: offset, length: length)
        if !unmasked {
            let all: IPAddress = network.address.family == .v4 ? .v4(UInt32.max) : .v6(UInt128.max)
            let mask = IPNetwork(address: all, prefixLength: network.prefixLength)!.network.bytes
            let bitwise = nftnl_expr_alloc("bitwise")!
            nftnl_expr_set_u32(bitwise, UInt16(NFTNL_EXPR_BITWISE_SREG), UInt32(NFT_REG_1.rawValue))
            nftnl_expr_set_u32(bitwise, UInt16(NFTNL_EXPR_BITWISE_DREG), UInt32(NFT_REG_1.rawValue))
            nftnl_expr_set_u32(bitwise, UInt16(NFTNL_EXPR_BITWISE_LEN), length)
            mask.withUnsafeBytes { _ = nftnl_expr_set(bitwise, UInt16(NFTNL_EXPR_BITWISE_MASK), $0.baseAddress, length) }
            [UInt8](repeating: 0, count: Int(length)).withUnsafeBytes {
                _ = nftnl_expr_set(bitwise, UInt16(NFTNL_EXPR_BITWISE_XOR), $0.baseAddress, length)
            }
            nftnl_rule_add_expr(rule, bitwise)
        }
        let cmp = nftnl_expr_alloc("cmp")!
        nftnl_expr_set_u32(cmp, UInt16(NFTNL_EXPR_CMP_SREG), UInt32(NFT_REG_1.rawValue))
        nftnl_expr_set_u32(cmp, UInt16(NFTNL_EXPR_CMP_OP), UInt32(NFT_CMP_EQ.rawValue))
        let bytes = Array(network.network.bytes.prefix(Int(length)))
        bytes.withUnsafeBytes { _ = nftnl_expr_set(cmp, UInt16(NFTNL_EXPR_CMP_DATA), $0.baseAddress, length) }
        nftnl_rule_add_expr(rule, cmp)
    }
}
