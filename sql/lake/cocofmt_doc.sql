-- Read one COCO-format file (COCO captions/instances, Objects365) - ONE top-level JSON object.
-- Grain: one row (the whole document). Only images/annotations/categories are kept, with every scalar
-- read as text so a string where a number belongs is quarantined row by row instead of failing the file.
-- `segmentation` is not listed, so it is skipped. The object is parsed in memory: the caller sets
-- $max_object_size to the file's size (not a blanket huge value), so memory is bounded by the file.
-- Parameters: $path (file), $max_object_size (bytes, >= file size).
SELECT images, annotations, categories
FROM read_json(
    $path,
    format = 'unstructured',
    records = true,
    maximum_object_size = $max_object_size,
    columns = {
        'images': 'STRUCT(id VARCHAR, file_name VARCHAR, width VARCHAR, height VARCHAR, coco_url VARCHAR, flickr_url VARCHAR, url VARCHAR)[]',
        'annotations': 'STRUCT(id VARCHAR, image_id VARCHAR, caption VARCHAR, bbox VARCHAR[], category_id VARCHAR, iscrowd VARCHAR, isfake VARCHAR, isreflected VARCHAR)[]',
        'categories': 'STRUCT(id VARCHAR, name VARCHAR)[]'
    }
)
