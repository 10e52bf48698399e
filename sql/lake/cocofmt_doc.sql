-- Read one COCO-format file (COCO captions/instances, Objects365) - ONE top-level JSON object.
-- Grain: one row (the whole document). Only images/annotations/categories are kept, every field as
-- DuckDB JSON so its JSON type is known: the per-record queries (cocofmt_images, cocofmt_objects,
-- coco_captions) check it with json_check and quarantine a wrong type (a string where a number
-- belongs, a null id) row by row instead of casting it or failing the file. Any producer of this table
-- (e.g. a streamed reader of a huge file feeding byte ranges) must give the same column types.
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
        'images': 'STRUCT(id JSON, file_name JSON, width JSON, height JSON, coco_url JSON, flickr_url JSON, url JSON)[]',
        'annotations': 'STRUCT(id JSON, image_id JSON, caption JSON, bbox JSON, category_id JSON, iscrowd JSON, isfake JSON, isreflected JSON)[]',
        'categories': 'STRUCT(id JSON, name JSON)[]'
    }
)
