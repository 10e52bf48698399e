-- Audit (zero rows expected): manifest rows whose .jpg or .json offset/size does not match a member
-- of its tar (a_members: every member of every shard tar, read from the tar headers), tar members
-- not in the manifest, and samples of a shard that are neither in the manifest nor quarantined.
-- Grain: one row per problem. Parameters: none.
WITH want AS (
    SELECT tar, key || '.jpg' AS name, jpg_offset AS off, jpg_size AS size FROM a_manifest
    UNION ALL
    SELECT tar, key || '.json', json_offset, json_size FROM a_manifest
)
SELECT w.tar, w.name, 'no such member (or other offset/size)' AS problem
FROM want AS w ANTI JOIN a_members AS m ON m.tar = w.tar AND m.name = w.name AND m.off = w.off AND m.size = w.size
UNION ALL
SELECT m.tar, m.name, 'member not in the manifest'
FROM a_members AS m ANTI JOIN want AS w ON m.tar = w.tar AND m.name = w.name
UNION ALL
SELECT CAST(s.shard AS VARCHAR), s.image_key, 'sample neither written nor quarantined'
FROM a_samples AS s
ANTI JOIN a_manifest AS m ON m.key = s.image_key
ANTI JOIN a_quarantine AS q ON q.key = s.image_key
