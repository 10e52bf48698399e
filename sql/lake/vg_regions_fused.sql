-- Visual Genome region_descriptions.json -> final region boxes (the columns of t_boxes) in ONE
-- streamed pass: the parse of vg_regions.sql fused with the box rule of final_boxes.sql (same
-- reasons in the same order, same clipping, same raw JSON), so millions of regions are parsed, checked
-- and written without staging a candidate table. Keep the two in step: tests/data/test_lake_fused.py
-- checks that this path and vg_regions + final_boxes give identical lake tables.
-- Not done here: duplicate_id. The ingest counts ids over this query (fused_regions_stream.sql) and
-- uses the result only when no region id can repeat; otherwise it falls back to the generic path.
-- The image join is done per image, before the unnest (108K probes, not 5.4M). locator and raw are
-- built for quarantined rows only (the only rows whose locator reaches the lake).
-- Grain: one row per region. Parameters: $path, $file, $min_kept_fraction (DOUBLE).
WITH img AS (
    SELECT image_key, reason AS img_reason, CAST(width AS DOUBLE) AS iw, CAST(height AS DOUBLE) AS ih
    FROM t_images
    WHERE image_key IS NOT NULL
    QUALIFY row_number() OVER (PARTITION BY image_key ORDER BY reason NULLS FIRST) = 1
),
doc AS (
    SELECT n, coalesce(id, image_id) AS img_id,
           CASE WHEN id IS NULL AND image_id IS NOT NULL THEN 'image_id' ELSE 'id' END AS id_field,
           'vg_' || CASE WHEN json_kind(coalesce(id, image_id)) = 'integer' THEN CAST(coalesce(id, image_id) AS VARCHAR) END AS image_key,
           regions
    FROM read_json(
        $path, format = 'array',
        columns = {'id': 'JSON', 'image_id': 'JSON',
                   'regions': 'STRUCT(region_id JSON, id JSON, image_id JSON, x JSON, y JSON, width JSON, height JSON, phrase JSON)[]'}
    ) WITH ORDINALITY AS t(id, image_id, regions, n)
),
per_image AS (
    SELECT doc.*, img.image_key AS img_key, img.img_reason, img.iw, img.ih
    FROM doc LEFT JOIN img ON img.image_key = doc.image_key
),
u AS (
    SELECT * EXCLUDE (regions), unnest(regions) AS r, generate_subscripts(regions, 1) - 1 AS k
    FROM per_image
),
t AS (  -- each value's JSON text once: the id texts, the coordinates' doubles, the phrase's text
    SELECT
        image_key, img_key, img_reason, iw, ih, n, k, id_field, img_id, r,
        CAST(img_id AS VARCHAR) AS img_txt, CAST(coalesce(r.region_id, r.id) AS VARCHAR) AS rid_txt,
        CAST(r.phrase AS VARCHAR) AS ph_txt,
        TRY_CAST(CAST(r.x AS VARCHAR) AS DOUBLE) AS x, TRY_CAST(CAST(r.y AS VARCHAR) AS DOUBLE) AS y,
        TRY_CAST(CAST(r.width AS VARCHAR) AS DOUBLE) AS w, TRY_CAST(CAST(r.height AS VARCHAR) AS DOUBLE) AS h
    FROM u
),
px AS (  -- x, y, w, h are used only where parse_reason is NULL, i.e. where each is a number (not a string)
    SELECT
        image_key, img_key, img_reason, iw, ih, n, k,
        json_text(coalesce(r.region_id, r.id)) AS box_id,
        r.x AS jx, r.y AS jy, r.width AS jw, r.height AS jh,  -- as text in `raw` only (quarantined rows)
        CASE WHEN starts_with(ph_txt, '"') THEN r.phrase ->> '$' END AS label,
        x, y, w, h,
        coalesce(json_int_check(id_field, img_id, img_txt), json_int_check('region_id', coalesce(r.region_id, r.id), rid_txt),
                 json_num_check('x', r.x, x), json_num_check('y', r.y, y),
                 json_num_check('width', r.width, w), json_num_check('height', r.height, h),
                 CASE WHEN NOT starts_with(ph_txt, '"') THEN json_check('phrase', r.phrase, ['string', 'null']) END) AS parse_reason
    FROM t
),
cl AS (
    SELECT
        *,
        greatest(x, 0) AS cx0, greatest(y, 0) AS cy0, least(x + w, iw) AS cx1, least(y + h, ih) AS cy1,
        greatest(least(x + w, iw) - greatest(x, 0), 0) * greatest(least(y + h, ih) - greatest(y, 0), 0) AS kept_area
    FROM px
),
rr AS (
    SELECT
        *,
        CASE
            WHEN parse_reason IS NOT NULL THEN parse_reason
            WHEN x IS NULL OR y IS NULL OR w IS NULL OR h IS NULL
              OR NOT (isfinite(x) AND isfinite(y) AND isfinite(w) AND isfinite(h)) THEN 'invalid_box'
            WHEN label IS NULL OR NOT regexp_matches(label, '[^\s,.''!?"()*#:;~/-]') THEN 'empty_text'
            WHEN img_key IS NULL THEN 'unknown_image'
            WHEN img_reason IS NOT NULL THEN 'image_not_loaded'
            WHEN iw IS NULL OR ih IS NULL THEN 'unknown_image_size'
            WHEN w <= 0 OR h <= 0 THEN 'zero_size_box'
            WHEN kept_area < $min_kept_fraction * w * h THEN 'box_outside_image'
        END AS final_reason
    FROM cl
)
SELECT
    'regions' AS entity, image_key, 'vg' AS source, box_id,
    CASE WHEN final_reason IS NULL THEN cx0 END AS x,
    CASE WHEN final_reason IS NULL THEN cy0 END AS y,
    CASE WHEN final_reason IS NULL THEN cx1 - cx0 END AS w,
    CASE WHEN final_reason IS NULL THEN cy1 - cy0 END AS h,
    label, CAST(NULL AS VARCHAR[]) AS attributes, CAST([] AS VARCHAR[]) AS flags, false AS is_group,
    final_reason IS NULL AND (cx0 <> x OR cy0 <> y OR cx1 <> x + w OR cy1 <> y + h) AS clipped,
    $file AS file,
    CASE WHEN final_reason IS NOT NULL THEN '[' || (n - 1) || '].regions[' || k || ']' END AS locator,
    final_reason AS reason,
    CASE WHEN final_reason IS NOT NULL THEN to_json({
        'image_key': image_key, 'box_id': box_id, 'coords': 'xywh', 'c': [json_text(jx), json_text(jy), json_text(jw), json_text(jh)], 'label': label,
        'image_width': iw, 'image_height': ih, 'image_reason': img_reason}) END AS raw
FROM rr
