-- Karpathy's dataset_coco.json / dataset_flickr30k.json: ONE object {"images": [...], "dataset": ...},
-- read whole (bounded by $max_object_size = file size). Fields as DuckDB JSON so their JSON types are
-- checked per record (karpathy_splits, flickr30k_images, flickr30k_captions: wrong_type:<field>=<kind>).
-- Grain: one row (the document). Parameters: $path, $max_object_size.
SELECT images, dataset
FROM read_json(
    $path, format = 'unstructured', records = true, maximum_object_size = $max_object_size,
    columns = {
        'images': 'STRUCT(filepath JSON, filename JSON, imgid JSON, split JSON, cocoid JSON, sentences STRUCT(raw JSON, sentid JSON)[])[]',
        'dataset': 'VARCHAR'
    }
)
