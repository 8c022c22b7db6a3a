<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>
<qgis version="3.22.0" styleCategories="AllStyleCategories" hasScaleBasedVisibilityFlag="0" minScale="1e+08" maxScale="0">
  <pipe>
    <provider>
      <resampling enabled="false" zoomedInResamplingMethod="nearestNeighbour" zoomedOutResamplingMethod="nearestNeighbour" maxOversampling="2"/>
    </provider>
    <rasterrenderer type="paletted" band="1" opacity="1" alphaBand="-1" nodataColor="">
      <rasterTransparency/>
      <colorPalette>
        <paletteEntry value="1" color="#e6a817" alpha="255" label="Corn-notill"/>
        <paletteEntry value="2" color="#f4d03f" alpha="255" label="Corn-mintill"/>
        <paletteEntry value="3" color="#9a7d0a" alpha="255" label="Corn"/>
        <paletteEntry value="4" color="#82e0aa" alpha="255" label="Grass-pasture"/>
        <paletteEntry value="5" color="#27ae60" alpha="255" label="Grass-trees"/>
        <paletteEntry value="6" color="#a04000" alpha="255" label="Hay-windrowed"/>
        <paletteEntry value="7" color="#5dade2" alpha="255" label="Soybean-notill"/>
        <paletteEntry value="8" color="#2e86c1" alpha="255" label="Soybean-mintill"/>
        <paletteEntry value="9" color="#1b4f72" alpha="255" label="Soybean-clean"/>
        <paletteEntry value="10" color="#f5cba7" alpha="255" label="Wheat"/>
        <paletteEntry value="11" color="#145a32" alpha="255" label="Woods"/>
        <paletteEntry value="12" color="#7f8c8d" alpha="255" label="Buildings-Grass-Trees-Drives"/>
        <paletteEntry value="13" color="#c0392b" alpha="255" label="Stone-Steel-Towers"/>
        <paletteEntry value="14" color="#a569bd" alpha="255" label="Alfalfa"/>
        <paletteEntry value="15" color="#17a589" alpha="255" label="Grass-pasture-mowed"/>
        <paletteEntry value="16" color="#e59866" alpha="255" label="Oats"/>
      </colorPalette>
    </rasterrenderer>
    <brightnesscontrast brightness="0" contrast="0" gamma="1"/>
    <huesaturation saturation="0" grayscaleMode="0" colorizeOn="0" colorizeRed="255" colorizeGreen="128" colorizeBlue="128" colorizeStrength="100" invertColors="0"/>
    <rasterresampler maxOversampling="2"/>
    <resamplingStage>resamplingFilter</resamplingStage>
  </pipe>
  <blendMode>0</blendMode>
</qgis>
