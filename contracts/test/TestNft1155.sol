// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

/// @notice What a contract that accepts ERC-1155 transfers answers.
interface IErc1155Receiver {
    function onERC1155Received(address operator, address from, uint256 id, uint256 value, bytes calldata data)
        external
        returns (bytes4);

    function onERC1155BatchReceived(
        address operator,
        address from,
        uint256[] calldata ids,
        uint256[] calldata values,
        bytes calldata data
    ) external returns (bytes4);
}

/// @title TestNft1155
/// @notice A minimal ERC-1155 multi-token for walletgate's tests: single and batch safe
///         transfers that check the receiver, and operators. Everything is minted in the
///         constructor (amounts[i] of ids[i] to holders[i]); nothing is minted later.
contract TestNft1155 {
    mapping(uint256 => mapping(address => uint256)) private balances;
    mapping(address => mapping(address => bool)) private operators;

    event TransferSingle(
        address indexed operator, address indexed from, address indexed to, uint256 id, uint256 value
    );
    event TransferBatch(
        address indexed operator, address indexed from, address indexed to, uint256[] ids, uint256[] values
    );
    event ApprovalForAll(address indexed account, address indexed operator, bool approved);

    constructor(address[] memory holders, uint256[] memory ids, uint256[] memory amounts) {
        require(holders.length == ids.length && ids.length == amounts.length, "lengths differ");
        for (uint256 i = 0; i < holders.length; i++) {
            require(holders[i] != address(0), "mint to the zero address");
            balances[ids[i]][holders[i]] += amounts[i];
            emit TransferSingle(msg.sender, address(0), holders[i], ids[i], amounts[i]);
        }
    }

    function supportsInterface(bytes4 interfaceId) external pure returns (bool) {
        // ERC-165 itself and ERC-1155.
        return interfaceId == 0x01ffc9a7 || interfaceId == 0xd9b67a26;
    }

    function balanceOf(address account, uint256 id) external view returns (uint256) {
        return balances[id][account];
    }

    function balanceOfBatch(address[] calldata accounts, uint256[] calldata ids)
        external
        view
        returns (uint256[] memory found)
    {
        require(accounts.length == ids.length, "accounts and ids differ in length");
        found = new uint256[](accounts.length);
        for (uint256 i = 0; i < accounts.length; i++) {
            found[i] = balances[ids[i]][accounts[i]];
        }
    }

    function setApprovalForAll(address operator, bool approved) external {
        require(operator != msg.sender, "an account is always its own operator");
        operators[msg.sender][operator] = approved;
        emit ApprovalForAll(msg.sender, operator, approved);
    }

    function isApprovedForAll(address account, address operator) public view returns (bool) {
        return operators[account][operator];
    }

    function safeTransferFrom(address from, address to, uint256 id, uint256 value, bytes calldata data) external {
        _checkMove(from, to);
        _move(from, to, id, value);
        emit TransferSingle(msg.sender, from, to, id, value);
        if (to.code.length > 0) {
            bytes4 answer = IErc1155Receiver(to).onERC1155Received(msg.sender, from, id, value, data);
            require(answer == IErc1155Receiver.onERC1155Received.selector, "receiver refused the tokens");
        }
    }

    function safeBatchTransferFrom(
        address from,
        address to,
        uint256[] calldata ids,
        uint256[] calldata values,
        bytes calldata data
    ) external {
        require(ids.length == values.length, "ids and values differ in length");
        _checkMove(from, to);
        for (uint256 i = 0; i < ids.length; i++) {
            _move(from, to, ids[i], values[i]);
        }
        emit TransferBatch(msg.sender, from, to, ids, values);
        if (to.code.length > 0) {
            bytes4 answer = IErc1155Receiver(to).onERC1155BatchReceived(msg.sender, from, ids, values, data);
            require(answer == IErc1155Receiver.onERC1155BatchReceived.selector, "receiver refused the tokens");
        }
    }

    function _checkMove(address from, address to) private view {
        require(to != address(0), "transfer to the zero address");
        require(from == msg.sender || isApprovedForAll(from, msg.sender), "not the holder or an operator");
    }

    function _move(address from, address to, uint256 id, uint256 value) private {
        uint256 held = balances[id][from];
        require(held >= value, "insufficient balance");
        balances[id][from] = held - value;
        balances[id][to] += value;
    }
}
